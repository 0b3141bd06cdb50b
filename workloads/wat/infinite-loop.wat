;; Hostile: `_start` spins forever.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $spin (br $spin))))
