//! Where a record lives: its segment and the offset of its header in that file.

use std::fmt;

/// The address of one record. Ordered as records are appended: by segment, then offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Segment id, the number in the segment's file name.
    pub segment: u64,
    /// Offset of the record's header (its length field) within the segment file.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}
