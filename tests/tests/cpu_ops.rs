//! The shared op parity bodies (tests/src/parity.rs) on the CPU backend.

use entmin_engine::cpu::CpuBackend;
use entmin_tests::parity;

#[test]
fn rms_norm() {
    parity::rms_norm(&CpuBackend);
}

#[test]
fn linear() {
    parity::linear(&CpuBackend);
}

#[test]
fn rope() {
    parity::rope(&CpuBackend);
}

#[test]
fn attention() {
    parity::attention(&CpuBackend);
}

#[test]
fn write_kv() {
    parity::write_kv(&CpuBackend);
}

#[test]
fn elementwise() {
    parity::elementwise(&CpuBackend);
}

#[test]
fn softmax_entropy() {
    parity::softmax_entropy(&CpuBackend);
}

#[test]
fn sample() {
    parity::sample(&CpuBackend);
}

#[test]
fn concat_and_mask() {
    parity::concat_and_mask(&CpuBackend);
}

#[test]
fn entropy_grad() {
    parity::entropy_grad(&CpuBackend);
}

#[test]
fn em_inf() {
    parity::em_inf(&CpuBackend);
}
