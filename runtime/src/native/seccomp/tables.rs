//! Syscall numbers of the deny list, per architecture, taken from the
//! `libc` crate's tables (0.2.191) and the kernel's `unistd_32.h` for the
//! 32-bit `*64` time calls; a test checks the native table against `libc`.
//! `clone` and `clone3` are apart (`*_CLONE`): the filter treats them
//! specially (namespace flags, `ENOSYS`).

/// (name, number) of every denied syscall the architecture has.
pub(super) type Table = &'static [(&'static str, u32)];

/// x86_64 (64-bit ABI).
#[cfg(target_arch = "x86_64")]
pub(super) const X86_64: Table = &[
    ("acct", 163),
    ("add_key", 248),
    ("bpf", 321),
    ("clock_adjtime", 305),
    ("clock_settime", 227),
    ("delete_module", 176),
    ("finit_module", 313),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fsopen", 430),
    ("fspick", 433),
    ("init_module", 175),
    ("ioperm", 173),
    ("iopl", 172),
    ("kexec_file_load", 320),
    ("kexec_load", 246),
    ("keyctl", 250),
    ("lookup_dcookie", 212),
    ("mount", 165),
    ("mount_setattr", 442),
    ("move_mount", 429),
    ("name_to_handle_at", 303),
    ("nfsservctl", 180),
    ("open_by_handle_at", 304),
    ("open_tree", 428),
    ("perf_event_open", 298),
    ("pivot_root", 155),
    ("quotactl", 179),
    ("quotactl_fd", 443),
    ("reboot", 169),
    ("request_key", 249),
    ("setns", 308),
    ("settimeofday", 164),
    ("swapoff", 168),
    ("swapon", 167),
    ("_sysctl", 156),
    ("syslog", 103),
    ("sysfs", 139),
    ("umount2", 166),
    ("unshare", 272),
    ("uselib", 134),
    ("userfaultfd", 323),
    ("ustat", 136),
    ("vhangup", 153),
];

/// `clone` and `clone3` on x86_64.
#[cfg(target_arch = "x86_64")]
pub(super) const X86_64_CLONE: (u32, u32) = (56, 435);

/// i386, also reachable from x86_64 processes.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub(super) const I386: Table = &[
    ("acct", 51),
    ("add_key", 286),
    ("bpf", 357),
    ("clock_adjtime", 343),
    ("clock_adjtime64", 405),
    ("clock_settime", 264),
    ("clock_settime64", 404),
    ("delete_module", 129),
    ("finit_module", 350),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fsopen", 430),
    ("fspick", 433),
    ("init_module", 128),
    ("ioperm", 101),
    ("iopl", 110),
    ("kexec_load", 283),
    ("keyctl", 288),
    ("lookup_dcookie", 253),
    ("mount", 21),
    ("mount_setattr", 442),
    ("move_mount", 429),
    ("name_to_handle_at", 341),
    ("nfsservctl", 169),
    ("open_by_handle_at", 342),
    ("open_tree", 428),
    ("perf_event_open", 336),
    ("pivot_root", 217),
    ("quotactl", 131),
    ("quotactl_fd", 443),
    ("reboot", 88),
    ("request_key", 287),
    ("setns", 346),
    ("settimeofday", 79),
    ("stime", 25),
    ("swapoff", 115),
    ("swapon", 87),
    ("_sysctl", 149),
    ("syslog", 103),
    ("sysfs", 135),
    ("umount", 22),
    ("umount2", 52),
    ("unshare", 310),
    ("uselib", 86),
    ("userfaultfd", 374),
    ("ustat", 62),
    ("vhangup", 111),
    ("vm86", 166),
    ("vm86old", 113),
];

/// `clone` and `clone3` on i386.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub(super) const I386_CLONE: (u32, u32) = (120, 435);

/// aarch64.
#[cfg(target_arch = "aarch64")]
pub(super) const AARCH64: Table = &[
    ("acct", 89),
    ("add_key", 217),
    ("bpf", 280),
    ("clock_adjtime", 266),
    ("clock_settime", 112),
    ("delete_module", 106),
    ("finit_module", 273),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fsopen", 430),
    ("fspick", 433),
    ("init_module", 105),
    ("kexec_file_load", 294),
    ("kexec_load", 104),
    ("keyctl", 219),
    ("lookup_dcookie", 18),
    ("mount", 40),
    ("mount_setattr", 442),
    ("move_mount", 429),
    ("name_to_handle_at", 264),
    ("nfsservctl", 42),
    ("open_by_handle_at", 265),
    ("open_tree", 428),
    ("perf_event_open", 241),
    ("pivot_root", 41),
    ("quotactl", 60),
    ("quotactl_fd", 443),
    ("reboot", 142),
    ("request_key", 218),
    ("setns", 268),
    ("settimeofday", 170),
    ("swapoff", 225),
    ("swapon", 224),
    ("syslog", 116),
    ("umount2", 39),
    ("unshare", 97),
    ("userfaultfd", 282),
    ("vhangup", 58),
];

/// `clone` and `clone3` on aarch64.
#[cfg(target_arch = "aarch64")]
pub(super) const AARCH64_CLONE: (u32, u32) = (220, 435);

/// arm EABI, also reachable from aarch64 processes where the CPU runs 32-bit code.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub(super) const ARM: Table = &[
    ("acct", 51),
    ("add_key", 309),
    ("bpf", 386),
    ("clock_adjtime", 372),
    ("clock_adjtime64", 405),
    ("clock_settime", 262),
    ("clock_settime64", 404),
    ("delete_module", 129),
    ("finit_module", 379),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fsopen", 430),
    ("fspick", 433),
    ("init_module", 128),
    ("kexec_file_load", 401),
    ("kexec_load", 347),
    ("keyctl", 311),
    ("lookup_dcookie", 249),
    ("mount", 21),
    ("mount_setattr", 442),
    ("move_mount", 429),
    ("name_to_handle_at", 370),
    ("nfsservctl", 169),
    ("open_by_handle_at", 371),
    ("open_tree", 428),
    ("perf_event_open", 364),
    ("pivot_root", 218),
    ("quotactl", 131),
    ("quotactl_fd", 443),
    ("reboot", 88),
    ("request_key", 310),
    ("setns", 375),
    ("settimeofday", 79),
    ("swapoff", 115),
    ("swapon", 87),
    ("_sysctl", 149),
    ("syslog", 103),
    ("sysfs", 135),
    ("umount2", 52),
    ("unshare", 337),
    ("uselib", 86),
    ("userfaultfd", 388),
    ("ustat", 62),
    ("vhangup", 111),
];

/// `clone` and `clone3` on arm.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub(super) const ARM_CLONE: (u32, u32) = (120, 435);
