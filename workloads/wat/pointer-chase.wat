;; Hostile: `_start` chases pointers through 32 MiB of memory forever. Each
;; unit of fuel is a cache miss, the slowest guest code per unit of fuel
;; there is.
(module
  (memory (export "memory") 512)
  (func (export "_start") (local $i i32) (local $p i32)
    ;; next[i] = (i * 1103515245 + 12345) mod 2^23: one cycle
    ;; through all 2^23 slots in a scattered order.
    (loop $init
      (i32.store
        (i32.shl (local.get $i) (i32.const 2))
        (i32.shl
          (i32.and
            (i32.add (i32.mul (local.get $i) (i32.const 1103515245))
                     (i32.const 12345))
            (i32.const 0x7fffff))
          (i32.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $init (i32.lt_u (local.get $i) (i32.const 0x800000))))
    (loop $chase
      (local.set $p (i32.load (local.get $p)))
      (br $chase))))
