//! ferrolb layer 2 announcer (being written).
