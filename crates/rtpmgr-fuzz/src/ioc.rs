//! The request catalogue: every ioctl of `rtpmgr_abi::request::ALL`, decoded into what the fuzzer
//! needs to build arguments for it. Nothing here names a request number: a request the ABI crate
//! gains is fuzzed from its encoded direction and size (and, for slot requests, from its name)
//! without a change to this crate.

use rtpmgr_abi::request;

// The generic ioctl encoding (dir:2 size:14 type:8 nr:8) that x86_64 and arm64 share; the ABI
// crate's own tests prove its numbers against the C header.
const IOC_NRBITS: u64 = 8;
const IOC_TYPEBITS: u64 = 8;
const IOC_SIZEBITS: u64 = 14;
const IOC_TYPESHIFT: u64 = IOC_NRBITS;
const IOC_SIZESHIFT: u64 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u64 = IOC_SIZESHIFT + IOC_SIZEBITS;

/// What a request does with its slot references, guessed from its name: RESERVE and POP hand
/// slots out, PUSH and RELEASE take them back, anything else (CANCEL, ...) takes reserved ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Reserve,
    Push,
    Pop,
    Release,
    Other,
}

/// How the fuzzer builds a valid argument for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No argument (`_IO`): START, STOP, RESET.
    None,
    /// GET_INFO: the layout the worker maps and indexes with.
    Info,
    /// GET_STATUS: a snapshot whose internal consistency is checked on every call.
    Status,
    /// CONFIGURE: a valid configuration within the memory cap.
    Configure,
    /// One `rtpm_slot_ref`.
    Slot(SlotKind),
    /// An `rtpm_batch` pointing at `rtpm_slot_ref`s.
    Batch(SlotKind),
    /// Anything else: a buffer of the encoded size.
    Opaque,
}

#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub name: &'static str,
    pub number: u64,
    pub shape: Shape,
}

impl Request {
    pub fn size(&self) -> usize {
        size_of_request(self.number)
    }
}

pub fn size_of_request(number: u64) -> usize {
    ((number >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)) as usize
}

fn dir_of(number: u64) -> u64 {
    number >> IOC_DIRSHIFT
}

fn type_of(number: u64) -> u64 {
    (number >> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1)
}

fn slot_kind(name: &str) -> SlotKind {
    if name.contains("RESERVE") {
        SlotKind::Reserve
    } else if name.contains("PUSH") {
        SlotKind::Push
    } else if name.contains("POP") {
        SlotKind::Pop
    } else if name.contains("RELEASE") {
        SlotKind::Release
    } else {
        SlotKind::Other
    }
}

fn shape(name: &str, number: u64) -> Shape {
    let size = size_of_request(number);
    let has = |part: &str| name.contains(part);
    if size == 0 {
        Shape::None
    } else if name.ends_with("GET_INFO") && size == size_of::<rtpmgr_abi::RtpmInfo>() {
        Shape::Info
    } else if name.ends_with("GET_STATUS") && size == size_of::<rtpmgr_abi::RtpmStatus>() {
        Shape::Status
    } else if name.ends_with("CONFIGURE") && size == size_of::<rtpmgr_abi::RtpmConfig>() {
        Shape::Configure
    } else if has("BATCH") && size == size_of::<rtpmgr_abi::RtpmBatch>() {
        Shape::Batch(slot_kind(name))
    } else if has("SLOT") && size == size_of::<rtpmgr_abi::RtpmSlotRef>() {
        Shape::Slot(slot_kind(name))
    } else {
        Shape::Opaque
    }
}

/// Every request of the ABI crate, in its order.
pub fn catalogue() -> Vec<Request> {
    request::ALL.iter().map(|&(name, number)| Request { name, number, shape: shape(name, number) }).collect()
}

/// Both numbers carry the same type byte (the module's magic).
pub fn same_type(a: u64, b: u64) -> bool {
    type_of(a) == type_of(b)
}

/// A request number the ABI does not define, derived from a defined one: another command number
/// of the same type byte, the right number with a wrong size or direction, or a neighbour's type
/// byte. The module must refuse each (ENOTTY).
pub fn undefined_request(known: &[Request], base: u64, variant: u64, noise: u64) -> Option<u64> {
    let mask_nr = (1u64 << IOC_NRBITS) - 1;
    let candidate = match variant % 4 {
        0 => (base & !mask_nr) | (noise & mask_nr),
        1 => {
            let size = (size_of_request(base) as u64 + 1 + noise % 64) & ((1 << IOC_SIZEBITS) - 1);
            (base & !(((1 << IOC_SIZEBITS) - 1) << IOC_SIZESHIFT)) | (size << IOC_SIZESHIFT)
        }
        2 => (base & !(3 << IOC_DIRSHIFT)) | (((dir_of(base) + 1 + noise % 3) % 4) << IOC_DIRSHIFT),
        _ => {
            let ty = (type_of(base) + 1 + noise % 254) & 0xff;
            (base & !(0xff << IOC_TYPESHIFT)) | (ty << IOC_TYPESHIFT)
        }
    };
    (!known.iter().any(|r| r.number == candidate)).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_abi_request_is_catalogued_with_its_encoded_size() {
        let cat = catalogue();
        assert_eq!(cat.len(), request::ALL.len());
        for r in &cat {
            match r.shape {
                Shape::None => assert_eq!(r.size(), 0, "{}", r.name),
                Shape::Batch(_) => assert_eq!(r.size(), size_of::<rtpmgr_abi::RtpmBatch>()),
                _ => assert!(r.size() > 0, "{}", r.name),
            }
        }
        // The requests the worker checks or tracks must be recognised, not fuzzed as opaque.
        for (part, want) in [("GET_INFO", Shape::Info), ("GET_STATUS", Shape::Status), ("CONFIGURE", Shape::Configure)]
        {
            assert!(cat.iter().any(|r| r.name.contains(part) && r.shape == want), "{part}");
        }
        // Requests the ABI may gain (CANCEL in 2.0) take the reserved slots they are about.
        for r in cat.iter().filter(|r| r.name.contains("CANCEL")) {
            assert!(matches!(r.shape, Shape::Slot(SlotKind::Other) | Shape::Batch(SlotKind::Other)), "{r:?}");
        }
        assert!(cat.iter().any(|r| r.shape == Shape::Batch(SlotKind::Reserve)));
        assert!(cat.iter().any(|r| r.shape == Shape::Slot(SlotKind::Pop)));
    }

    #[test]
    fn undefined_requests_are_never_defined_ones() {
        let cat = catalogue();
        let mut found = 0;
        for r in &cat {
            for v in 0..4 {
                for noise in 0..64 {
                    if let Some(n) = undefined_request(&cat, r.number, v, noise) {
                        assert!(cat.iter().all(|k| k.number != n));
                        found += 1;
                    }
                }
            }
        }
        assert!(found > 100);
    }
}
