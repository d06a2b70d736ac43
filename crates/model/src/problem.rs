//! A problem found in the input: what `ferrolb check` prints, one per line.

use std::fmt;

/// One thing wrong with the input, naming the object and field it concerns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The object: `Kind/name` for a resource, or `path (document N)` for a file.
    pub object: String,
    /// The field path within the object (`spec.addresses[0]`); empty when it concerns the
    /// whole object.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
    /// Whether the problem may go away by itself (a referenced object that does not
    /// exist yet), as MetalLB's transient errors. Still a problem for `check`.
    pub transient: bool,
}

impl Problem {
    /// A problem with a resource's field.
    pub fn new(
        kind: &str,
        name: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            object: format!("{kind}/{name}"),
            field: field.into(),
            message: message.into(),
            transient: false,
        }
    }

    /// Marks the problem as transient.
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}
