#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Rust twin of `bpf/vigil_abi.h` must match the layout the compiler gave the program.
//! This reads the BTF that clang emitted into the embedded object and compares every struct's
//! size and every field's offset with `size_of`/`offset_of!` on the Rust side.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use object::{Object, ObjectSection};
use vigil_xdp::abi::{
    Bucket, Config, Counter, LpmV4, LpmV6, Row, Rule, Slot, SynState, Tables, V6Bucket, V6Key,
    V6Lens, V6Val,
};

const BTF_KIND_STRUCT: u32 = 4;

/// struct name -> (size, [(member, byte offset)])
type Layouts = HashMap<String, (u32, Vec<(String, u32)>)>;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// A minimal BTF walker: enough to read struct layouts.
fn btf_structs(btf: &[u8]) -> Layouts {
    assert_eq!(
        u16::from_le_bytes([btf[0], btf[1]]),
        0xeb9f,
        "not little-endian BTF"
    );
    let hdr_len = u32_at(btf, 4) as usize;
    let (type_off, type_len) = (u32_at(btf, 8) as usize, u32_at(btf, 12) as usize);
    let (str_off, str_len) = (u32_at(btf, 16) as usize, u32_at(btf, 20) as usize);
    let types = &btf[hdr_len + type_off..hdr_len + type_off + type_len];
    let strings = &btf[hdr_len + str_off..hdr_len + str_off + str_len];
    let name = |off: u32| {
        let s = &strings[off as usize..];
        let end = s.iter().position(|&c| c == 0).unwrap();
        String::from_utf8(s[..end].to_vec()).unwrap()
    };
    let mut out = Layouts::new();
    let mut p = 0;
    while p < types.len() {
        let (name_off, info, size) = (u32_at(types, p), u32_at(types, p + 4), u32_at(types, p + 8));
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let kind_flag = info >> 31 == 1;
        p += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        if kind == BTF_KIND_STRUCT && name_off != 0 {
            let members = (0..vlen)
                .map(|i| {
                    let m = p + i * 12;
                    let bits = u32_at(types, m + 8);
                    let bit_off = if kind_flag { bits & 0xff_ffff } else { bits };
                    assert_eq!(bit_off % 8, 0, "bitfields are not part of the ABI");
                    (name(u32_at(types, m)), bit_off / 8)
                })
                .collect();
            out.insert(name(name_off), (size, members));
        }
        p += extra;
    }
    out
}

macro_rules! check {
    ($layouts:expr, $c:literal, $rust:ty, [$($field:ident),+ $(,)?]) => {{
        let (size, members) = $layouts
            .get($c)
            .unwrap_or_else(|| panic!("struct {} missing from the program's BTF", $c));
        assert_eq!(*size as usize, size_of::<$rust>(), "size of {} vs {}", $c, stringify!($rust));
        let rust: Vec<(String, u32)> =
            vec![$((stringify!($field).to_owned(), offset_of!($rust, $field) as u32)),+];
        assert_eq!(members, &rust, "fields of {} vs {}", $c, stringify!($rust));
    }};
}

#[test]
fn abi_matches_btf() {
    let obj = object::File::parse(vigil_xdp::OBJECT).unwrap();
    let btf = obj
        .section_by_name(".BTF")
        .expect("object has no .BTF (built without -g?)");
    let layouts = btf_structs(btf.data().unwrap());
    check!(layouts, "vigil_lpm_v4", LpmV4, [prefixlen, addr]);
    check!(layouts, "vigil_lpm_v6", LpmV6, [prefixlen, addr]);
    check!(
        layouts,
        "vigil_rule",
        Rule,
        [expires_ns, created_unix, prefixlen, flags, reason, origin]
    );
    check!(layouts, "vigil_row", Row, [e]);
    check!(
        layouts,
        "vigil_slot",
        Slot,
        [expires_ns, addr, prefixlen, flags, allow_up, block_up]
    );
    check!(layouts, "vigil_v6_key", V6Key, [len, addr]);
    check!(layouts, "vigil_v6_val", V6Val, [slot]);
    check!(layouts, "vigil_v6_bucket", V6Bucket, [count, len]);
    check!(layouts, "vigil_v6_lens", V6Lens, [count, len]);
    check!(
        layouts,
        "vigil_tables",
        Tables,
        [
            generation,
            rules_v4,
            rules_v6,
            slots_used,
            groups_used,
            counts,
            dirty,
            v6_entries,
            v6,
            switched_ns
        ]
    );
    check!(layouts, "vigil_bucket", Bucket, [credit_ns, last_ns]);
    check!(
        layouts,
        "vigil_config",
        Config,
        [
            abi_version,
            rate_enabled,
            ns_per_packet,
            burst_ns,
            attach_mode,
            allow_v4_used,
            allow_v6_used,
            rate_bits,
            syn_guards,
            syn_mss4,
            syn_mss6,
            syn_wscale,
            syn_ttl,
            syn_capable,
            syn_hold_ns,
            syn_port,
            syn_limit
        ]
    );
    check!(
        layouts,
        "vigil_syn_state",
        SynState,
        [
            window_ns,
            armed_until_ns,
            window_syns,
            syns,
            cookies,
            cookie_acks,
            dropped
        ]
    );
    check!(layouts, "vigil_counter", Counter, [packets, bytes]);
}

#[test]
fn header_constants_match() {
    let header = include_str!("../bpf/vigil_abi.h");
    let define = |name: &str| -> u64 {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} not defined in the header"));
        let v = line
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches('u');
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    };
    assert_eq!(
        define("VIGIL_ABI_VERSION"),
        u64::from(vigil_xdp::abi::ABI_VERSION)
    );
    assert_eq!(
        define("VIGIL_REASON_LEN"),
        vigil_xdp::abi::REASON_LEN as u64
    );
    assert_eq!(
        define("VIGIL_ORIGIN_LEN"),
        vigil_xdp::abi::ORIGIN_LEN as u64
    );
    assert_eq!(
        define("VIGIL_RULE_F_AUTO"),
        u64::from(vigil_xdp::abi::RULE_F_AUTO)
    );
    assert_eq!(
        define("VIGIL_RULE_F_FLEET"),
        u64::from(vigil_xdp::abi::RULE_F_FLEET)
    );
    assert_eq!(
        define("VIGIL_MODE_NATIVE"),
        u64::from(vigil_xdp::abi::MODE_NATIVE)
    );
    assert_eq!(
        define("VIGIL_MODE_GENERIC"),
        u64::from(vigil_xdp::abi::MODE_GENERIC)
    );
    let abi_u32 = [
        ("VIGIL_T24_GROUP", u64::from(vigil_xdp::abi::T24_GROUP)),
        ("VIGIL_V6_LENS", vigil_xdp::abi::V6_LENS as u64),
        ("VIGIL_V6_STEPS", u64::from(vigil_xdp::abi::V6_STEPS)),
        (
            "VIGIL_V6_BUCKET_LENS",
            vigil_xdp::abi::V6_BUCKET_LENS as u64,
        ),
        (
            "VIGIL_V6_BUCKET_FULL",
            u64::from(vigil_xdp::abi::V6_BUCKET_FULL),
        ),
        ("VIGIL_ORIGINS", vigil_xdp::abi::ORIGINS as u64),
        ("VIGIL_RATE_ROWS", u64::from(vigil_xdp::abi::RATE_ROWS)),
        ("VIGIL_SLOT_ALLOW", u64::from(vigil_xdp::abi::SLOT_ALLOW)),
        ("VIGIL_SLOT_V6", u64::from(vigil_xdp::abi::SLOT_V6)),
        (
            "VIGIL_SLOT_ORIGIN_SHIFT",
            u64::from(vigil_xdp::abi::SLOT_ORIGIN_SHIFT),
        ),
    ];
    for (name, want) in abi_u32 {
        assert_eq!(define(name), want, "{name}");
    }
    // The table sizes are expressions in the header: check them against their spelling.
    for (name, expr) in [
        ("VIGIL_T24_ROWS", "(1u << 16)"),
        ("VIGIL_T8_GROUPS", "(1u << 15)"),
        ("VIGIL_V6_BUCKETS", "(1u << 20)"),
        ("VIGIL_MAX_SLOTS", "((1u << 20) + (1u << 16) + 1)"),
    ] {
        assert!(
            header.contains(&format!("#define {name} {expr}")),
            "{name} is no longer {expr}: update abi.rs with it"
        );
    }
    assert_eq!(vigil_xdp::abi::T24_ROWS, 1 << 16);
    assert_eq!(vigil_xdp::abi::T8_GROUPS, 1 << 15);
    assert_eq!(vigil_xdp::abi::V6_BUCKETS, 1 << 20);
    // The bucket hash of abi::v6_bucket, as the program spells it.
    assert!(include_str!("../bpf/vigil.c").contains("* 0x9e3779b1u) >> 12)"));
    assert_eq!(vigil_xdp::abi::v6_bucket(1), 0x9e37_79b1 >> 12);
    assert_eq!(vigil_xdp::abi::MAX_SLOTS, (1 << 20) + (1 << 16) + 1);
    // Enum values: VIGIL_R_<NAME> = N, in the order of Reason::ALL.
    for r in vigil_xdp::abi::Reason::ALL {
        let c = format!("VIGIL_R_{} = {},", r.as_str().to_uppercase(), r as u32);
        assert!(header.contains(&c), "header lacks `{c}`");
    }
    assert!(header.contains(&format!("VIGIL_R_MAX = {},", vigil_xdp::abi::Reason::COUNT)));
}
