;; Invalid: well-formed text, but `i32.add` is given an i64 operand, so the
;; binary fails validation.
(module
  (func (export "_start")
    (drop (i32.add (i32.const 1) (i64.const 2)))))
