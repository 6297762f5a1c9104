//! The crate's one error type.
//!
//! Every fallible call returns [`Error`]. Errors caused by user input name the
//! field, the value given and what is allowed, and are raised *before* anything
//! on the GPU changes.

/// A convenient alias for `Result<T, wgpu_optim::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, without the details; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A hyperparameter or option is out of range.
    InvalidConfig,
    /// No adapter (GPU or software driver) was found.
    NoAdapter,
    /// The adapter or device does not offer a limit the engine needs.
    LimitExceeded,
    /// Lengths, shapes or layouts do not agree.
    LayoutMismatch,
    /// A tensor name is not in the layout.
    UnknownTensor,
    /// Objects from two different devices were mixed.
    WrongDevice,
    /// wgpu reported a validation or out-of-memory error.
    Gpu,
    /// The device was lost.
    DeviceLost,
    /// Waiting for the GPU took longer than the bound.
    Timeout,
    /// A step saw non-finite gradients and was skipped (`NonFinite::Error`).
    NonFinite,
    /// A checkpoint could not be written, or a file is truncated, corrupt or
    /// does not match the live training state.
    Checkpoint,
    /// A collective operation (all-reduce, broadcast) failed on some
    /// participant; every participant gets this error and none stepped.
    Collective,
}

/// The error type of every fallible function in this crate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter is invalid. `message` uses PyTorch's wording where it
    /// has one ("Invalid beta parameter at index 0: 1.5").
    #[error("{message} (field `{field}` = {value}; allowed: {allowed})")]
    InvalidConfig {
        /// The field, with PyTorch's name (`lr`, `beta1`, ...).
        field: String,
        /// The value that was given, formatted.
        value: String,
        /// What is allowed, in words ("0 <= beta1 < 1").
        allowed: String,
        /// The message, PyTorch's wording where one exists.
        message: String,
    },
    /// No adapter was found.
    #[error(
        "no GPU adapter found ({reason}); install a Vulkan, Metal, DX12 or GL driver \
         (on Linux without a GPU: `apt-get install mesa-vulkan-drivers` for lavapipe)"
    )]
    NoAdapter {
        /// What was tried.
        reason: String,
    },
    /// A device limit is too small for what was asked.
    #[error("limit `{limit}` too small: {needed} needed, the device offers {available}{hint}")]
    LimitExceeded {
        /// The wgpu limit's name (`max_storage_buffers_per_shader_stage`).
        limit: String,
        /// What the engine or the request needs.
        needed: u64,
        /// What the adapter or device offers.
        available: u64,
        /// Extra advice, starting with "; " when present.
        hint: String,
    },
    /// Lengths or layouts disagree.
    #[error("layout mismatch: {reason}")]
    LayoutMismatch {
        /// What differs.
        reason: String,
    },
    /// The tensor name is not in the layout.
    #[error("unknown tensor `{name}`; the layout has {known}")]
    UnknownTensor {
        /// The name that was asked for.
        name: String,
        /// A short list of the names that exist.
        known: String,
    },
    /// Objects of two devices were mixed.
    #[error("wrong device: {what} belongs to device #{found}, but device #{expected} was passed")]
    WrongDevice {
        /// What was passed.
        what: String,
        /// The device it was created on.
        found: u64,
        /// The device it was used with.
        expected: u64,
    },
    /// wgpu reported an error (validation, out of memory, mapping).
    #[error("wgpu error in {context}: {message}")]
    Gpu {
        /// The operation, e.g. `optim/adam/new`.
        context: String,
        /// wgpu's message.
        message: String,
    },
    /// The device was lost.
    #[error("device lost: the GPU device was lost ({reason})")]
    DeviceLost {
        /// wgpu's reason.
        reason: String,
    },
    /// Steps with NaN or infinite gradients were skipped on the device, and
    /// the optimizer was asked to report it (`NonFinite::Error`).
    #[error(
        "{skipped} step(s) up to step {host_step} had non-finite gradients and were skipped \
         (parameters and optimizer state unchanged by them)"
    )]
    NonFinite {
        /// How many newly seen skipped steps.
        skipped: u64,
        /// The host step count when the skip was observed.
        host_step: u64,
    },
    /// A checkpoint file could not be written or read, or does not match.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong, naming the tensor or field and expected vs found.
        reason: String,
    },
    /// A wait on the GPU exceeded its bound.
    #[error("timed out after {seconds} s waiting for the GPU in {context}")]
    Timeout {
        /// The operation that waited.
        context: String,
        /// The bound, in seconds.
        seconds: f64,
    },
    /// A collective operation failed on one participant (a device in this
    /// process or an MPI rank). Every participant returns this error, and no
    /// replica applied the step.
    #[error("collective {operation} failed on participant {participant}: {reason}")]
    Collective {
        /// The operation: `all-reduce`, `broadcast`, `layout check`.
        operation: String,
        /// Which participant failed first: `device 1`, `rank 3`.
        participant: String,
        /// What happened there.
        reason: String,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig { .. } => ErrorKind::InvalidConfig,
            Error::NoAdapter { .. } => ErrorKind::NoAdapter,
            Error::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Error::LayoutMismatch { .. } => ErrorKind::LayoutMismatch,
            Error::UnknownTensor { .. } => ErrorKind::UnknownTensor,
            Error::WrongDevice { .. } => ErrorKind::WrongDevice,
            Error::Gpu { .. } => ErrorKind::Gpu,
            Error::DeviceLost { .. } => ErrorKind::DeviceLost,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::NonFinite { .. } => ErrorKind::NonFinite,
            Error::Checkpoint { .. } => ErrorKind::Checkpoint,
            Error::Collective { .. } => ErrorKind::Collective,
        }
    }

    /// Builds an [`Error::InvalidConfig`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
            message: message.into(),
        }
    }

    /// Builds an [`Error::LayoutMismatch`].
    pub fn mismatch(reason: impl Into<String>) -> Self {
        Error::LayoutMismatch {
            reason: reason.into(),
        }
    }
}
