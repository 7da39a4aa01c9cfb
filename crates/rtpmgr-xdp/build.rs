//! Builds bpf/rtp_steer.bpf.c into $OUT_DIR/rtp_steer.bpf.o with clang (`-O2 -g -target bpf`),
//! which src/steer.rs embeds with `aya::include_bytes_aligned!`. The object is a build product,
//! never committed.
//!
//! Environment:
//! - `CLANG`: the compiler (default: `clang`, then `clang-14`; Debian: `apt-get install clang`).
//! - `RTPMGR_BPF_CFLAGS`: extra flags, e.g. `-I<sysroot>/usr/include` for a cross build whose
//!   host has no Linux UAPI and libbpf headers (Debian: `linux-libc-dev libbpf-dev`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/rtp_steer.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=RTPMGR_BPF_CFLAGS");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("rtp_steer.bpf.o");

    // BPF byte order follows the target that will load the object (bpfel on x86_64 and arm64).
    let endian = env::var("CARGO_CFG_TARGET_ENDIAN").unwrap_or_else(|_| "little".into());
    let bpf_target = if endian == "big" { "bpfeb" } else { "bpfel" };

    // <linux/types.h> includes <asm/types.h>, which Debian keeps under the multiarch directory of
    // the build host; `-target bpf` does not search it by itself.
    let host = env::var("HOST").unwrap_or_default();
    let mut args: Vec<String> = vec!["-O2".into(), "-g".into(), "-target".into(), bpf_target.into(), "-Wall".into()];
    if let Some(arch) = host.split('-').next() {
        let multiarch = PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));
        if multiarch.is_dir() {
            args.push(format!("-I{}", multiarch.display()));
        }
    }
    if let Ok(extra) = env::var("RTPMGR_BPF_CFLAGS") {
        args.extend(extra.split_whitespace().map(String::from));
    }
    args.extend(["-c".into(), src.into(), "-o".into(), out.display().to_string()]);

    let candidates: Vec<String> = match env::var("CLANG") {
        Ok(c) => vec![c],
        Err(_) => vec!["clang".into(), "clang-14".into(), "clang-16".into()],
    };
    for clang in &candidates {
        match Command::new(clang).args(&args).output() {
            Ok(o) if o.status.success() => return,
            Ok(o) => panic!(
                "{clang} failed to build {src} (exit {}):\n{}\nargs: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr),
                args.join(" ")
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot run {clang}: {e}"),
        }
    }
    panic!(
        "no clang found (tried {}) to build the XDP program {src}: install clang and libbpf-dev \
         (scripts/setup-host.sh does), or set CLANG=/path/to/clang",
        candidates.join(", ")
    );
}
