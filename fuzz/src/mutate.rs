//! Structure-blind mutations of a seed, the classic set (as AFL's havoc stage uses):
//! bit flips, interesting values (0, −1, boundaries, powers of two) written as 1-, 2-, 4-
//! or 8-byte little-endian integers, small arithmetic on such integers (GGUF and
//! safetensors are full of lengths and counts), byte runs deleted, duplicated or
//! overwritten, splices with another seed, and text-level edits for the JSON and
//! template targets. Several are stacked per input.

use entmin::engine::Rng;

const INTERESTING: [u64; 14] =
    [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x1_0000, 0x7fff_ffff, 0xffff_ffff, u64::MAX, 1 << 40];

/// Fragments the text mutations insert: JSON and Jinja syntax, control tokens, odd
/// Unicode.
const TOKENS: [&str; 24] = [
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "-1",
    "1e309",
    "\\u0000",
    "{{",
    "}}",
    "{%",
    "%}",
    "<|im_start|>",
    "<|im_end|>",
    "\u{2581}",
    "\u{fffd}",
    "\u{200d}",
    "é",
    "😀",
    "\n",
    "####",
];

fn below(rng: &mut Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// One mutated copy of `seed` (`other` is a second seed for splicing).
pub fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    let rounds = 1 + below(rng, 6);
    for _ in 0..rounds {
        let len = d.len();
        match below(rng, 10) {
            0 if len > 0 => {
                let i = below(rng, len);
                d[i] ^= 1 << below(rng, 8);
            }
            1 if len > 0 => {
                let width = [1, 2, 4, 8][below(rng, 4)].min(len);
                let i = below(rng, len - width + 1);
                let v = INTERESTING[below(rng, INTERESTING.len())];
                d[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            2 if len >= 4 => {
                // ± a little on a little-endian u32 or u64: lengths and counts just off.
                let width = if len >= 8 && below(rng, 2) == 0 { 8 } else { 4 };
                let i = below(rng, len - width + 1);
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(&d[i..i + width]);
                let delta = below(rng, 33) as u64;
                let v = if below(rng, 2) == 0 {
                    u64::from_le_bytes(b).wrapping_add(delta)
                } else {
                    u64::from_le_bytes(b).wrapping_sub(delta)
                };
                d[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            3 if len > 1 => {
                let i = below(rng, len);
                let n = 1 + below(rng, (len - i).min(64));
                d.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = below(rng, len);
                let n = 1 + below(rng, (len - i).min(64));
                let chunk = d[i..i + n].to_vec();
                let at = below(rng, d.len() + 1);
                d.splice(at..at, chunk);
            }
            5 if len > 0 => {
                let i = below(rng, len);
                let n = 1 + below(rng, (len - i).min(16));
                let byte = rng.next_u64() as u8;
                d[i..i + n].iter_mut().for_each(|b| *b = byte);
            }
            6 if !other.is_empty() => {
                let cut = below(rng, d.len() + 1);
                let from = below(rng, other.len());
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            7 => {
                let t = TOKENS[below(rng, TOKENS.len())].as_bytes();
                let at = below(rng, d.len() + 1);
                d.splice(at..at, t.iter().copied());
            }
            8 if len > 0 => {
                d.truncate(below(rng, len));
            }
            _ => {
                let at = below(rng, d.len() + 1);
                let n = 1 + below(rng, 8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                d.splice(at..at, bytes);
            }
        }
    }
    d
}
