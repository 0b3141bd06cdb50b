//! Small WASI command modules, in WAT, that tests and the demo run as jobs.

/// Writes "hello\n" to stdout.
pub const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Counts down from `iterations`, then writes `line` to stdout: about a
/// second of work per 1.5 billion iterations, so a job spans intervals of
/// devnet time (whose clock runs faster than real time).
pub fn countdown(iterations: u32, line: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "_start") (local $i i32)
    (local.set $i (i32.const {iterations}))
    (loop $l
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        text = line.escape_default(),
        len = line.len(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn countdown_writes_its_line() {
        let wat = super::countdown(3_000_000_000, "done: 3000000000 iterations\n");
        assert!(wat.contains(r#""done: 3000000000 iterations\n""#));
        assert!(wat.contains("(i32.const 3000000000)"));
        assert!(wat.contains("(i32.const 28)"));
    }
}
