use entmin_engine::wgpu::WgpuBackend;
use entmin_engine::*;
use std::time::Instant;
fn main() {
    let b = WgpuBackend::new().unwrap();
    let t = |name: &str, f: &dyn Fn()| {
        f();
        b.synchronize().unwrap();
        let s = Instant::now();
        for _ in 0..5 {
            f();
        }
        b.synchronize().unwrap();
        println!("{name}: {:.2} ms", s.elapsed().as_secs_f64() * 200.0);
    };
    let w = b.upload_as(&vec![0.01f32; 49152 * 576], &[49152, 576], DType::BF16).unwrap();
    let w2 = b.upload_as(&vec![0.01f32; 1536 * 576], &[1536, 576], DType::BF16).unwrap();
    let x = b.upload(HostData::F32(&vec![0.5f32; 576]), &[1, 576]).unwrap();
    let logits = b.upload(HostData::F32(&vec![0.5f32; 49152]), &[1, 49152]).unwrap();
    t("gemv lm_head", &|| {
        b.linear(&x, &w, None).unwrap();
    });
    t("gemv ffn 1536", &|| {
        b.linear(&x, &w2, None).unwrap();
    });
    t("rms", &|| {
        b.rms_norm(&x, &b.upload(HostData::F32(&vec![1.0f32; 576]), &[576]).unwrap(), 1e-5).unwrap();
    });
    t("softmax_entropy", &|| {
        b.softmax_entropy(&logits, 1.0).unwrap();
    });
    t("sample greedy", &|| {
        b.sample(&logits, &SamplingParams::greedy(), &mut [Rng::new(0)]).unwrap();
    });
    t("empty dispatch add", &|| {
        let mut y = b.zeros(&[1, 576], DType::BF16).unwrap();
        b.add_assign(&mut y, &x).unwrap();
    });
    let k = b.zeros(&[64, 192], DType::BF16).unwrap();
    let q = b.upload(HostData::F32(&vec![0.5f32; 576]), &[1, 576]).unwrap();
    t("attention", &|| {
        b.attention(&q, &k, &k, AttentionShape { n_heads: 9, n_kv_heads: 3, head_dim: 64, start_pos: 40 }).unwrap();
    });
}
