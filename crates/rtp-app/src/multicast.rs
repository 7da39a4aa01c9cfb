//! Multicast for rtp_app: the shared socket library's groups and send options
//! ([`rtpmgr_net`]), with messages that name rtp_app's flags.
//!
//! rtp_app and rtp-feeder open their sockets through the same library, so a group joined with
//! `--group 232.1.1.1 --ssm-source 10.0.0.1 --iface eth0` here behaves exactly as the feeder's
//! `[receive]` section with the same values.

pub use rtpmgr_net::{
    apply_send_options, bind_joined, ethernet_group_address, interface_index, is_ssm_range, join, InputNames,
    Membership, SendOptions, DEFAULT_TTL,
};

/// rtp_app's flags, as the library's messages name them.
pub const FLAGS: InputNames =
    InputNames { group: "--group", source: "--ssm-source", iface: "--iface", bind: "--bind", port: "--port" };

/// The group `--group`/`--ssm-source`/`--iface` ask for, checked; the message names the flag.
pub fn membership(
    group: std::net::IpAddr,
    source: Option<std::net::IpAddr>,
    iface: Option<String>,
) -> Result<Membership, String> {
    Membership::new(group, source, iface, FLAGS).map_err(|e| e.to_string())
}

/// A well-formed `--iface` name (whether it exists is [`interface_index`]'s question).
pub fn check_interface_name(name: &str) -> Result<(), String> {
    rtpmgr_net::check_interface_name(name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The library's own tests cover joining and sending; these pin the flag names rtp_app's
    // users see.
    #[test]
    fn messages_name_rtp_apps_flags() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let e = membership(ip("10.0.0.1"), None, None).unwrap_err();
        assert!(e.contains("--group 10.0.0.1 is not a multicast address") && e.contains("use --bind"), "{e}");
        let e = membership(ip("232.1.1.1"), Some(ip("fd00::1")), None).unwrap_err();
        assert!(e.contains("--ssm-source fd00::1 and --group 232.1.1.1"), "{e}");
        let e = membership(ip("ff02::1:3"), None, None).unwrap_err();
        assert!(e.contains("needs --iface"), "{e}");
        let w = membership(ip("232.1.1.1"), None, None).unwrap().warning().unwrap();
        assert!(w.contains("no --ssm-source was given"), "{w}");
        assert!(check_interface_name("eth 0").unwrap_err().contains("not a network interface name"));
    }
}
