//! CPU-heavy job: `cpu-kernel <int|mem|float> <size>` prints the kernel's
//! checksum. The kernels are also exported for direct calls by the benchmark.

#[unsafe(no_mangle)]
pub extern "C" fn kernel_int(n: u64) -> u64 {
    kernels::int_mix(n)
}

#[unsafe(no_mangle)]
pub extern "C" fn kernel_mem(n: u64) -> u64 {
    kernels::sieve(n as usize)
}

#[unsafe(no_mangle)]
pub extern "C" fn kernel_float(n: u64) -> u64 {
    kernels::matmul(n as usize)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("int");
    let size: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let sum = match kind {
        "int" => kernel_int(size),
        "mem" => kernel_mem(size),
        "float" => kernel_float(size),
        other => {
            eprintln!("unknown kernel {other}; use int, mem or float");
            std::process::exit(2);
        }
    };
    println!("{kind} {size} {sum}");
}
