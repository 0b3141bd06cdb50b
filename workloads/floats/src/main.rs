//! Floating-point work whose bits differ between machines unless the
//! sandbox makes them the same: NaNs with payloads and signs, fused
//! multiply-add, min/max of NaN, conversions, and the math library.
//! Prints every result's bits; in the sandbox its output must be the same
//! on every run and under every executor setting.
use std::hint::black_box;

fn f64_line(name: &str, x: f64) {
    println!("{name} {:016x}", x.to_bits());
}

fn f32_line(name: &str, x: f32) {
    println!("{name} {:08x}", x.to_bits());
}

fn main() {
    let zero = black_box(0.0f64);
    let payload = f64::from_bits(black_box(0x7ff4_dead_beef_0001));
    let negative_nan = f64::from_bits(black_box(0xfff8_0000_0000_0042));
    f64_line("0/0", zero / zero);
    f64_line("sqrt(-1)", black_box(-1.0f64).sqrt());
    f64_line("inf-inf", f64::INFINITY - black_box(f64::INFINITY));
    f64_line("payload*2", payload * black_box(2.0));
    f64_line("-nan+1", negative_nan + black_box(1.0));
    f64_line("payload+negative", payload + negative_nan);
    f64_line("fma", black_box(0.1f64).mul_add(black_box(10.0), black_box(-1.0)));
    f64_line("min(nan,1)", payload.min(black_box(1.0)));
    f64_line("max(-0,0)", black_box(-0.0f64).max(black_box(0.0)));
    f32_line("f32(payload)", payload as f32);
    f32_line("f32 0/0", black_box(0.0f32) / black_box(0.0f32));
    f64_line("f64(f32 nan)", f32::from_bits(black_box(0x7fa0_0001)) as f64);
    println!("nan as i64 {}", payload as i64);
    let mut acc = 0.0f64;
    for k in 1..2_000u32 {
        let x = f64::from(k) * 0.001;
        acc += x.sin() * x.exp().ln_1p() / (1.0 + x.powf(1.5)).sqrt();
        acc = acc.mul_add(0.999_999, (x * 1e300) * 1e300 - f64::INFINITY);
        if acc.is_nan() {
            acc = f64::from(k);
        }
    }
    f64_line("series", acc);
    let mut nans = Vec::new();
    for k in 0..8u64 {
        let n = f64::from_bits(0x7ff0_0000_0000_0001 | k << 40) * black_box(-1.0);
        nans.push(n.to_bits());
    }
    println!("nan products {nans:x?}");
}
