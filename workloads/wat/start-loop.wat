;; Hostile: the module's start function spins forever, so the job never
;; reaches `_start`; instantiation itself must be metered.
(module
  (memory (export "memory") 1)
  (func $trap_door (loop $spin (br $spin)))
  (start $trap_door)
  (func (export "_start")))
