;; Hostile: calls memory.grow in a loop and ignores the result.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $grow
      (drop (memory.grow (i32.const 16)))
      (br $grow))))
