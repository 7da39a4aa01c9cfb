//! The UDP sockets of rtpmgr's RTP paths, opened one way for every tool.
//!
//! One job: open a bound UDP socket for RTP receive or send, sized, and joined to a multicast
//! group (any-source or source-specific, IPv4 or IPv6, on a named interface). What is done with
//! the socket afterwards (`recvmmsg` batches in rtp_app, or ATTACH to a ring channel so the
//! kernel receives into the ring, see `rtpmgr::Channel::attach`) is the caller's business.
//!
//! ```no_run
//! use rtpmgr_net::{open_receiver, InputNames, Membership, ReceiveSpec};
//! let names = InputNames::NEUTRAL;
//! let group = Membership::new("232.1.1.1".parse().unwrap(), Some("10.0.0.1".parse().unwrap()), Some("eth0".into()), names)?;
//! let spec = ReceiveSpec { bind: None, port: 5004, membership: Some(group), rcvbuf: Some(4 << 20), names };
//! let socket = open_receiver(&spec)?; // bound to 232.1.1.1:5004, joined (232.1.1.1, 10.0.0.1) on eth0
//! # Ok::<(), rtpmgr_net::Error>(())
//! ```
//!
//! Messages name the user's inputs the way the front end spells them ([`InputNames`]: rtp_app's
//! `--group`, rtp-feeder's `receive.group`), so an error says what to change.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

pub mod multicast;
pub mod socket;

pub use multicast::{
    apply_send_options, check_interface_name, ethernet_group_address, interface_index, is_ssm_range, join, Membership,
    SendOptions, DEFAULT_TTL,
};
pub use socket::{bind_joined, bind_unicast, open_receiver, set_receive_buffer, set_send_buffer, ReceiveSpec};

use std::io;

/// How the front end names the inputs a request came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputNames {
    /// The multicast group ("--group").
    pub group: &'static str,
    /// The one source of a source-specific join ("--ssm-source").
    pub source: &'static str,
    /// The interface ("--iface").
    pub iface: &'static str,
    /// The local address to bind ("--bind").
    pub bind: &'static str,
    /// The UDP port ("--port").
    pub port: &'static str,
}

impl InputNames {
    /// Plain words, for callers without flags or keys.
    pub const NEUTRAL: InputNames =
        InputNames { group: "group", source: "source", iface: "interface", bind: "bind address", port: "port" };
}

/// What can go wrong opening a socket. The `Display` of each variant is one sentence; the
/// `source` chain holds the OS error, so `{:#}` through anyhow prints the whole story.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is wrong (a unicast group, mixed address families, a malformed
    /// interface name); the message names the input as [`InputNames`] spell it.
    #[error("{0}")]
    Invalid(String),
    /// The named interface does not exist.
    #[error("there is no network interface named '{name}' ({errno}; `ip link` lists them)")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
        /// What if_nametoindex said (part of the message, not a source: said once).
        errno: io::Error,
    },
    /// A socket call failed; `what` says which ("bind UDP 0.0.0.0:5004").
    #[error("cannot {what}")]
    Os {
        /// The action, after "cannot".
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No interface was named and the routing table has no route to the group.
    #[error("no route to the group picks an interface; give {iface}")]
    NoRoute {
        /// How the front end names the interface input.
        iface: &'static str,
        /// The OS error (ENODEV).
        #[source]
        source: io::Error,
    },
    /// Joining a group failed: `membership` is [`Membership::describe`].
    #[error("cannot join {membership}")]
    Join {
        /// "232.1.1.1 from 10.0.0.1 on eth0".
        membership: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Setting a multicast send option failed.
    #[error("cannot set {option} for sending to {target}")]
    SendOption {
        /// The option ("IP_MULTICAST_TTL", "the outgoing interface").
        option: &'static str,
        /// "239.1.1.1 on eth0".
        target: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn os(what: impl Into<String>, source: io::Error) -> Self {
        Error::Os { what: what.into(), source }
    }
}
