//! [`FromFn`]: a schedule given by a user function of the step (PyTorch
//! `LambdaLR` with the base folded in), and its function type [`LrFn`].

use std::fmt;
use std::sync::Arc;

use super::Family;
use crate::error::Result;

/// A user-supplied learning-rate function of the step, for
/// [`Schedule::from_fn`](super::Schedule::from_fn).
#[derive(Clone)]
pub struct LrFn(pub Arc<dyn Fn(u64) -> f64 + Send + Sync>);

impl fmt::Debug for LrFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LrFn(<closure>)")
    }
}

/// A schedule given by a function of the step (not serializable); built by
/// [`Schedule::from_fn`](super::Schedule::from_fn).
#[derive(Clone, Debug)]
pub struct FromFn {
    pub(super) f: LrFn,
}

impl FromFn {
    /// The function.
    pub fn f(&self) -> &LrFn {
        &self.f
    }
}

impl Family for FromFn {
    fn kind(&self) -> &'static str {
        "from_fn"
    }
    /// Nothing to check: the values are checked where they are applied
    /// ([`Schedule::try_lr`](super::Schedule::try_lr)).
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    fn base_lr(&self) -> f64 {
        (self.f.0)(0)
    }
    fn lr(&self, e: u64) -> f64 {
        (self.f.0)(e)
    }
}
