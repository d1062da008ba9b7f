//! Bounds on what a selector may cost to parse and evaluate.
//!
//! Selectors come from clients, so every dimension that could make parsing or evaluation
//! expensive, or deep enough to overflow a thread's stack, is capped. The defaults suit a
//! broker whose worker threads have the usual 2 MiB stacks.

/// Default for [`Limits::text_bytes_max`]: far above any hand-written selector.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Default for [`Limits::depth_max`]. Parsing and evaluation both recurse once per level,
/// so this bounds their stack use: at 128 levels, under 400 KiB unoptimized and about a
/// third of that optimized (`tests/parse_errors.rs` checks the worst shapes on a 1 MiB stack).
pub const MAX_DEPTH: usize = 128;

/// Default for [`Limits::in_items_max`].
pub const MAX_IN_ITEMS: usize = 10_000;

/// The bounds a parse enforces. [`Limits::default`] uses the `MAX_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted selector text, in bytes.
    pub text_bytes_max: usize,
    /// Deepest accepted nesting: of parentheses, of `NOT`s and signs, and of the expression
    /// tree itself (a chain `a + b + c` is as deep as it is long; `AND`/`OR` chains are not).
    /// Raising it raises the stack needed to parse and evaluate.
    pub depth_max: usize,
    /// Most items accepted in one `IN (...)` list.
    pub in_items_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            text_bytes_max: MAX_TEXT_BYTES,
            depth_max: MAX_DEPTH,
            in_items_max: MAX_IN_ITEMS,
        }
    }
}
