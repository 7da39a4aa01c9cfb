//! The crate's one error type: what was being done, and the errno that says why.

use nix::errno::Errno;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of a ring operation. Every variant carries the operation (and channel) it happened in
/// and maps to an errno, so callers can branch on the kernel's exact answer with [`Error::errno`]
/// whichever backend produced it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call, or a slot operation the ring refused, failed with `errno`.
    #[error("{context}: {}", describe(*.errno))]
    Sys {
        /// What was being done, e.g. "push batch on /dev/rtp_mgr0".
        context: String,
        /// The errno, exactly as the kernel (or the shm backend, which mirrors it) returned it.
        errno: Errno,
    },
    /// The header page does not describe a ring this library can use (hostile or corrupt).
    #[error("{context}: invalid ring header: {reason}")]
    BadHeader {
        /// Which ring.
        context: String,
        /// Which invariant failed.
        reason: String,
    },
    /// The module speaks an ABI major version this library does not.
    #[error(
        "{context}: ABI {major}.{minor} of the module is not supported (this library speaks {}.x): \
         update rtpmgr or the module",
        rtpmgr_abi::RTPM_ABI_MAJOR
    )]
    AbiMismatch {
        /// Which channel.
        context: String,
        /// The module's major version.
        major: u16,
        /// The module's minor version.
        minor: u16,
    },
    /// The kernel refused a request with `errno`, and the errno alone would not say why:
    /// `reason` says it in the request's terms (e.g. which role another file holds).
    #[error("{context}: {reason} ({})", describe(*.errno))]
    Refused {
        /// What was being done, e.g. "attach RX socket (fd 5) to /dev/rtp_mgr0".
        context: String,
        /// The kernel's errno.
        errno: Errno,
        /// What the errno means for this request.
        reason: String,
    },
    /// The backend cannot do this at all (e.g. attaching a socket to a shm ring, which has no
    /// kernel to move packets). [`Error::errno`] is `EOPNOTSUPP`.
    #[error("{context}: not supported: {reason}")]
    Unsupported {
        /// What was being asked, and of which ring.
        context: String,
        /// Why not, and what to use instead.
        reason: String,
    },
}

fn describe(e: Errno) -> String {
    // Errno's Display is "EPERM: Operation not permitted"; name the slot errno the way the UAPI
    // header does, since its libc description ("Invalid slot") says little.
    match e {
        Errno::EBADSLT => "EBADSLT: slot in the wrong state for the operation".into(),
        e => e.to_string(),
    }
}

impl Error {
    /// The errno of this error: the kernel's answer for [`Error::Sys`] and [`Error::Refused`],
    /// `EOPNOTSUPP` for [`Error::Unsupported`], `EPROTO` for a header or ABI mismatch.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Sys { errno, .. } | Error::Refused { errno, .. } => *errno,
            Error::Unsupported { .. } => Errno::EOPNOTSUPP,
            Error::BadHeader { .. } | Error::AbiMismatch { .. } => Errno::EPROTO,
        }
    }

    /// True for `EAGAIN`: nothing to reserve or pop right now.
    pub fn is_would_block(&self) -> bool {
        self.errno() == Errno::EAGAIN
    }

    pub(crate) fn sys(context: impl Into<String>, errno: Errno) -> Self {
        Error::Sys { context: context.into(), errno }
    }
}

/// Attaches context to a bare errno.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| {
            let errno = e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
            Error::sys(what(), errno)
        })
    }
}
