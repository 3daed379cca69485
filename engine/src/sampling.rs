/// How a token is drawn from logits. Filters apply in the order of the fields:
/// banned tokens, temperature, top-k, top-p, min-p.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1 disables.
    pub top_p: f32,
    /// 0 disables: keep tokens with p ≥ min_p · p_max.
    pub min_p: f32,
    /// Token ids never to sample (e.g. padding rows of the vocabulary).
    pub banned: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, banned: Vec::new() }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, ..Default::default() }
    }

    /// The temperature of the distribution a reported log-prob is under: T, or 1 for
    /// greedy decoding (T = 0).
    pub fn effective_temperature(&self) -> f32 {
        if self.temperature == 0.0 {
            1.0
        } else {
            self.temperature
        }
    }

    pub fn validate(&self) -> crate::Result<()> {
        let bad = |d: String| Err(crate::EngineError::invalid("sample", d));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature {} must be finite and ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p {} must be in [0, 1]", self.min_p));
        }
        Ok(())
    }
}

/// The drawn token, its log-probability and the entropy of the distribution it was drawn
/// from: softmax(logits / T) over the tokens not banned, before the top-k / top-p / min-p
/// filters (T = 1 for greedy). The entropy comes with the log-sum-exp the draw needs, so
/// reporting it costs no extra pass over the row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleOutcome {
    pub token: u32,
    pub logprob: f32,
    /// Entropy in nats.
    pub entropy: f32,
}

/// xoshiro256** seeded through splitmix64: small, fast, and identical on every
/// platform, so a seed reproduces a generation exactly.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// What a GPU sampler takes from the host once every backend's checks have passed.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) struct DeviceDraw {
    /// One uniform number per row from the row's generator; none is drawn for greedy
    /// decoding, as on the CPU backend, so a seed reproduces a generation everywhere.
    pub uniforms: Vec<f32>,
    pub inv_t: f32,
    pub greedy: bool,
    pub top_k: u32,
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn device_draw(
    params: &SamplingParams,
    rows: usize,
    cols: usize,
    rngs: &mut [Rng],
) -> crate::Result<DeviceDraw> {
    params.validate()?;
    if rngs.len() != rows {
        return Err(crate::EngineError::shape("sample", format!("{} generators for {rows} rows", rngs.len())));
    }
    if cols == 0 && rows > 0 {
        return Err(crate::EngineError::NonFinite { row: 0, what: "an empty row" });
    }
    let greedy = params.temperature == 0.0;
    Ok(DeviceDraw {
        uniforms: rngs.iter_mut().map(|r| if greedy { 0.0 } else { r.next_f64() as f32 }).collect(),
        inv_t: if greedy { 1.0 } else { 1.0 / params.temperature },
        greedy,
        top_k: params.top_k.min(u32::MAX as usize) as u32,
    })
}

/// The banned ids as a bit mask over `cols` columns, as GPU samplers read it (one word
/// when nothing is banned, so the buffer is never empty).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn banned_bits(banned: &[u32], cols: usize) -> Vec<u32> {
    let mut bits = vec![0u32; if banned.is_empty() { 1 } else { cols.div_ceil(32) }];
    for &id in banned.iter().filter(|&&id| (id as usize) < cols) {
        bits[id as usize / 32] |= 1 << (id % 32);
    }
    bits
}

/// u32 words per row of the GPU sample kernels' output.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) const OUTCOME_WORDS: usize = 4;

/// Per-row results as GPU samplers write them: (status, token, log-prob bits, entropy
/// bits), status 0 ok, 1 NaN or +inf in the row, 2 nothing left to sample.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn outcomes_from_device(raw: &[u32]) -> crate::Result<Vec<SampleOutcome>> {
    use crate::EngineError::NonFinite;
    raw.chunks_exact(OUTCOME_WORDS)
        .enumerate()
        .map(|(row, o)| match o[0] {
            0 => Ok(SampleOutcome { token: o[1], logprob: f32::from_bits(o[2]), entropy: f32::from_bits(o[3]) }),
            1 => Err(NonFinite { row, what: "NaN or +inf" }),
            _ => Err(NonFinite { row, what: "every token masked or −inf" }),
        })
        .collect()
}
