use super::*;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/dequant")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Checks every case of `tests/reference/dequant/<name>.json` (made by
/// make_dequant_fixtures.py from gguf-py) bit for bit, serially and
/// through the parallel path (the case repeated past PAR_MIN_ELEMENTS).
fn check_fixture(ty: DType) {
    let path = fixture_dir().join(format!("{}.json", ty.name().to_uppercase()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(DType::parse(doc["type"].as_str().unwrap()), Some(ty));
    let cases = doc["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let bytes = unhex(case["bytes"].as_str().unwrap());
        let want: Vec<u32> = unhex(case["expected_f32le"].as_str().unwrap())
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(want.len(), n);
        assert_eq!(ty.bytes_for(n), Some(bytes.len()), "{ty} {name}");

        let mut out = vec![f32::NAN; n];
        dequantize(ty, &bytes, &mut out).unwrap();
        for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
            assert_eq!(
                got.to_bits(),
                want,
                "{ty} case {name:?} element {i}: got {got:e}, gguf-py {:e}",
                f32::from_bits(want)
            );
        }

        let reps = PAR_MIN_ELEMENTS / n + 2;
        let big_in = bytes.repeat(reps);
        let mut big = vec![f32::NAN; n * reps];
        dequantize(ty, &big_in, &mut big).unwrap();
        for (i, got) in big.iter().enumerate() {
            assert_eq!(got.to_bits(), want[i % n], "{ty} {name:?} parallel, element {i}");
        }
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $ty:ident,)*) => {$(
        #[test]
        fn $test() {
            check_fixture(DType::$ty);
        }
    )*};
}

fixture_tests! {
    dequant_f32_matches_gguf_py => F32,
    dequant_f16_matches_gguf_py => F16,
    dequant_bf16_matches_gguf_py => BF16,
    dequant_q4_0_matches_gguf_py => Q4_0,
    dequant_q4_1_matches_gguf_py => Q4_1,
    dequant_q5_0_matches_gguf_py => Q5_0,
    dequant_q5_1_matches_gguf_py => Q5_1,
    dequant_q8_0_matches_gguf_py => Q8_0,
    dequant_iq4_nl_matches_gguf_py => IQ4_NL,
    dequant_q2_k_matches_gguf_py => Q2K,
    dequant_q3_k_matches_gguf_py => Q3K,
    dequant_q4_k_matches_gguf_py => Q4K,
    dequant_q5_k_matches_gguf_py => Q5K,
    dequant_q6_k_matches_gguf_py => Q6K,
    dequant_q8_k_matches_numpy => Q8K,
    dequant_iq4_xs_matches_gguf_py => IQ4_XS,
}

#[test]
fn dequant_every_dtype_has_a_fixture() {
    for ty in DType::ALL {
        assert!(fixture_dir().join(format!("{}.json", ty.name().to_uppercase())).exists(), "{ty}");
    }
}

#[test]
fn block_layouts_are_ggmls() {
    use DType::*;
    // sizeof(block_*) from ggml-common.h
    let sizes = [(Q4_0, 18), (Q4_1, 20), (Q5_0, 22), (Q5_1, 24), (Q8_0, 34), (IQ4_NL, 18)];
    let k_sizes = [(Q2K, 84), (Q3K, 110), (Q4K, 144), (Q5K, 176), (Q6K, 210), (Q8K, 292), (IQ4_XS, 136)];
    for (ty, size) in sizes.into_iter().chain(k_sizes) {
        let block = ty.block().unwrap();
        assert_eq!(block.bytes, size, "{ty}");
        assert_eq!(block.elements, if size > 34 { 256 } else { 32 }, "{ty}");
        assert_eq!(ty.bytes_for(3 * block.elements), Some(3 * size));
        assert_eq!(ty.bytes_for(block.elements + 1), None, "{ty}");
        if block.bytes > block.elements {
            assert_eq!(ty.bytes_for(usize::MAX - usize::MAX % block.elements), None, "{ty} overflow");
        }
        assert_eq!(DType::parse(&ty.name().to_lowercase()), Some(ty));
    }
    for ty in [F32, F16, BF16] {
        assert!(ty.block().is_none() && !ty.is_quantised());
        assert_eq!(ty.bytes_for(3), Some(3 * ty.size_bytes()));
    }
    assert_eq!(DType::parse("bfloat16"), Some(BF16));
    assert_eq!(DType::parse("q9_0"), None);
}

#[test]
fn dequant_errors() {
    let mut out = vec![0f32; 64];
    assert_eq!(
        dequantize(DType::Q4K, &[0; 144], &mut out),
        Err(QuantError::NotBlockMultiple { dtype: DType::Q4K, n: 64, block: 256 })
    );
    assert_eq!(
        dequantize(DType::Q4_0, &[0; 35], &mut out),
        Err(QuantError::ByteLength { dtype: DType::Q4_0, n: 64, expected: 36, got: 35 })
    );
    assert_eq!(
        dequantize(DType::F16, &[0; 130], &mut out),
        Err(QuantError::ByteLength { dtype: DType::F16, n: 64, expected: 128, got: 130 })
    );
    let err = dequantize(DType::Q6K, &[0; 210], &mut out).unwrap_err();
    assert!(err.to_string().contains("Q6_K") && err.to_string().contains("256"), "{err}");
    // n = 0 is fine and touches nothing
    assert_eq!(dequantize(DType::Q6K, &[], &mut []), Ok(()));
}

#[test]
fn dequant_hand_checked_blocks() {
    // Q8_0: d = 0.5, q = -128..=127 pattern
    let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
    b.extend((0..32).map(|i| (i as i8 * 4 - 64) as u8));
    let mut y = [0f32; 32];
    dequantize(DType::Q8_0, &b, &mut y).unwrap();
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, (i as f32 * 4.0 - 64.0) * 0.5);
    }
    // Q4_0: byte j = low j%16, high 15-j%16; d = 2
    let mut b = half::f16::from_f32(2.0).to_le_bytes().to_vec();
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    dequantize(DType::Q4_0, &b, &mut y).unwrap();
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 2.0);
        assert_eq!(y[j + 16], (7.0 - j as f32) * 2.0);
    }
    // Q4_K: all scales/mins 1 (j<4: low 6 bits; j>=4: nibbles of bytes 8..12),
    // d = 1, dmin = 0.5, nibbles: low 3, high 12 -> 3 - 0.5, 12 - 0.5
    let mut b = Vec::new();
    b.extend(half::f16::from_f32(1.0).to_le_bytes());
    b.extend(half::f16::from_f32(0.5).to_le_bytes());
    b.extend([1, 1, 1, 1, 1, 1, 1, 1, 0x11, 0x11, 0x11, 0x11]);
    b.extend([0xC3; 128]);
    let mut y = [0f32; 256];
    dequantize(DType::Q4K, &b, &mut y).unwrap();
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, if (i / 32) % 2 == 0 { 2.5 } else { 11.5 }, "element {i}");
    }
}

#[test]
fn f16_widening_is_exact_for_every_value() {
    for bits in 0..=u16::MAX {
        let want = half::f16::from_bits(bits).to_f32();
        let got = legacy::f16_to_f32(bits);
        if want.is_nan() {
            assert!(got.is_nan() && got.is_sign_negative() == want.is_sign_negative(), "{bits:#06x}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{bits:#06x}: {got:e} vs {want:e}");
        }
    }
}
