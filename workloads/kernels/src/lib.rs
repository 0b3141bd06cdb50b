//! CPU kernels shared by the `cpu-kernel` guest (built for wasm32-wasip1) and
//! the provider node's benchmark (built natively), so both run the same code.
//!
//! Each kernel returns a checksum so that the work can't be optimised away
//! and so that native and sandboxed runs can be compared for equality.

/// Integer kernel: an xorshift/multiply mixing loop on registers only.
pub fn int_mix(iterations: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut acc: u64 = 0;
    let mut i = 0;
    while i < iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 32);
        acc = acc.rotate_left(5) ^ (i & 0xff);
        i += 1;
    }
    acc
}

/// Memory-bound kernel: sieve of Eratosthenes over `limit` bytes; returns the
/// number of primes below `limit`.
pub fn sieve(limit: usize) -> u64 {
    if limit < 2 {
        return 0;
    }
    let mut composite = vec![false; limit];
    let mut count = 0u64;
    let mut i = 2;
    while i < limit {
        if !composite[i] {
            count += 1;
            let mut j = i.saturating_mul(i);
            while j < limit {
                composite[j] = true;
                j += i;
            }
        }
        i += 1;
    }
    count
}

/// Floating-point kernel: `n` x `n` f64 matrix product; returns the bits of
/// the sum of the result.
pub fn matmul(n: usize) -> u64 {
    let a: Vec<f64> = (0..n * n).map(|k| ((k % 17) as f64) * 0.5 + 1.0).collect();
    let b: Vec<f64> = (0..n * n).map(|k| ((k % 13) as f64) * 0.25 - 1.0).collect();
    let mut c = vec![0.0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c.iter().sum::<f64>().to_bits()
}
