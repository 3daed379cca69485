// The gradients of x / rms(x) · weight, one workgroup per row, with s = 1/sqrt(mean(x²) + eps):
// dx = s·w⊙dy − x·s³·Σ_c(w_c·dy_c·x_c)/cols, and the row's share of dweight, dy·x·s, in
// dw_rows (the host sums it over rows with matmul_strided).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw_rows: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let row = group_index(inv);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var squares = 0.0;
    var dot = 0.0;
    for (var c = inv.lid; c < p.cols; c += WG) {
        let v = x[base + c];
        squares += v * v;
        dot += weight[c] * dy[base + c] * v;
    }
    let s = 1.0 / sqrt(wg_sum(squares, inv) / f32(p.cols) + p.eps);
    let correction = s * s * s * wg_sum(dot, inv) / f32(p.cols);
    for (var c = inv.lid; c < p.cols; c += WG) {
        let v = x[base + c];
        let g = dy[base + c];
        dx[base + c] = s * weight[c] * g - v * correction;
        dw_rows[base + c] = g * v * s;
    }
}
