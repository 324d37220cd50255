;; A stand-in for the Python module with the same exports (`memory`, `host_alloc`, `turn`) and
;; imports (WASI preview 1, `host.call`), for testing the host plumbing without the 100 MB
;; interpreter. A "cell" is a one-letter command and its argument:
;;   p TEXT  print TEXT on stdout        e TEXT  print TEXT on stderr
;;   s C     remember the byte C          r       print the remembered byte
;;   x N     return N (sys.exit)          q       return 256 (exit())
;;   g       grow memory until it fails, then return 1 (MemoryError)
;;   l       loop forever                 t       trap (unreachable)
;;   o       print 1 KiB on stdout 1,000 times
;;   wN NAME create NAME under preopen fd N and write "aaaa"; return 1 if that fails
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "host" "call" (func $host_call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0..64: scratch (iovecs, results); 64: the remembered byte; 1024..: 1 KiB of 'a';
  ;; the bump allocator starts at 4096.
  (global $next (mut i32) (i32.const 4096))
  (data (i32.const 64) "?")
  (func $init_spam
    (memory.fill (i32.const 1024) (i32.const 97) (i32.const 1024)))
  (start $init_spam)
  (func (export "host_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "turn") (param $ptr i32) (param $len i32) (result i32)
    (local $cmd i32) (local $i i32) (local $fd i32)
    (local.set $cmd (i32.load8_u (local.get $ptr)))
    ;; p / e: print the rest after "p "
    (if (i32.eq (local.get $cmd) (i32.const 112))
      (then (call $write (i32.const 1) (i32.add (local.get $ptr) (i32.const 2))
              (i32.sub (local.get $len) (i32.const 2)))
            (return (i32.const 0))))
    (if (i32.eq (local.get $cmd) (i32.const 101))
      (then (call $write (i32.const 2) (i32.add (local.get $ptr) (i32.const 2))
              (i32.sub (local.get $len) (i32.const 2)))
            (return (i32.const 0))))
    ;; s C: remember C
    (if (i32.eq (local.get $cmd) (i32.const 115))
      (then (i32.store8 (i32.const 64) (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))))
            (return (i32.const 0))))
    ;; r: print the remembered byte
    (if (i32.eq (local.get $cmd) (i32.const 114))
      (then (call $write (i32.const 1) (i32.const 64) (i32.const 1))
            (return (i32.const 0))))
    ;; x N: exit code N (one digit)
    (if (i32.eq (local.get $cmd) (i32.const 120))
      (then (return (i32.sub (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))) (i32.const 48)))))
    (if (i32.eq (local.get $cmd) (i32.const 113))
      (then (return (i32.const 256))))
    ;; g: grow by 16 pages until it fails
    (if (i32.eq (local.get $cmd) (i32.const 103))
      (then (block $done (loop $more
              (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
              (br $more)))
            (return (i32.const 1))))
    (if (i32.eq (local.get $cmd) (i32.const 108))
      (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $cmd) (i32.const 116))
      (then unreachable))
    (if (i32.eq (local.get $cmd) (i32.const 111))
      (then (loop $again
              (call $write (i32.const 1) (i32.const 1024) (i32.const 1024))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))
            (return (i32.const 0))))
    ;; wN NAME: open NAME under the preopen with descriptor N (the second byte) and write
    ;; "aaaa"
    (if (i32.eq (local.get $cmd) (i32.const 119))
      (then
        (local.set $fd (i32.sub (i32.load8_u (i32.add (local.get $ptr) (i32.const 1))) (i32.const 48)))
        ;; path_open(dirfd, dirflags=0, path, path_len, oflags=CREAT|TRUNC (1|8), rights, rights, fdflags=0, &fd)
        (if (call $path_open (local.get $fd) (i32.const 0)
              (i32.add (local.get $ptr) (i32.const 3)) (i32.sub (local.get $len) (i32.const 3))
              (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16))
          (then (return (i32.const 1))))
        (i32.store (i32.const 20) (i32.const 1024))
        (i32.store (i32.const 24) (i32.const 4))
        (drop (call $fd_write (i32.load (i32.const 16)) (i32.const 20) (i32.const 1) (i32.const 28)))
        (drop (call $fd_close (i32.load (i32.const 16))))
        (return (i32.const 0))))
    (i32.const 2))
)
