;; The smallest job: `_start` returns at once. Used to measure start latency.
(module
  (memory (export "memory") 1)
  (func (export "_start")))
