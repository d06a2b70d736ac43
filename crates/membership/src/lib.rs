//! ferrolb's membership (work in progress).
