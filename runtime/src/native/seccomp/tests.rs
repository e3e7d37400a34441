use super::*;

/// The errno of the last failed call, or 0 when `rc` is not -1.
fn errno_of(rc: libc::c_long) -> i32 {
    if rc == -1 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// Runs `check` in a forked child under `filter`; its exit code.
fn in_filtered_child(filter: &Filter, check: fn() -> i32) -> i32 {
    // SAFETY: the child makes raw syscalls only, then `_exit`s.
    match unsafe { libc::fork() } {
        0 => {
            let code = unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    100
                } else if filter.install().is_err() {
                    101
                } else {
                    check()
                }
            };
            unsafe { libc::_exit(code) }
        }
        -1 => panic!("fork: {}", io::Error::last_os_error()),
        child => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            assert!(libc::WIFEXITED(status), "child status {status:#x}");
            libc::WEXITSTATUS(status)
        }
    }
}

/// 0 when every denied call fails as it should and allowed ones work,
/// else the number of the first check that did not.
fn denied_and_allowed_calls() -> i32 {
    // SAFETY: raw syscalls with harmless arguments (an invalid reboot
    // magic, a null clone3 argument, ...).
    unsafe {
        if errno_of(libc::syscall(libc::SYS_reboot, 0, 0, 0, 0)) != libc::EPERM {
            return 1;
        }
        if errno_of(libc::syscall(libc::SYS_keyctl, 0, -3, 0)) != libc::EPERM {
            return 2;
        }
        if errno_of(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long) != libc::EPERM {
            return 3;
        }
        let null = std::ptr::null::<u8>();
        if errno_of(libc::syscall(libc::SYS_clone3, null, 0)) != libc::ENOSYS {
            return 4;
        }
        let flags = (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_long;
        if errno_of(libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0)) != libc::EPERM {
            return 5;
        }
        if libc::getpid() <= 0 {
            return 6;
        }
        match libc::fork() {
            -1 => return 7,
            0 => libc::_exit(0),
            child => {
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
                if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                    return 8;
                }
            }
        }
    }
    0
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn the_native_deny_table_agrees_with_libc() {
    let nr = |name: &str| {
        host_arches()[0]
            .denied
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, nr)| i64::from(nr))
    };
    let expected = [
        ("reboot", libc::SYS_reboot),
        ("kexec_load", libc::SYS_kexec_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("keyctl", libc::SYS_keyctl),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("swapon", libc::SYS_swapon),
        ("pivot_root", libc::SYS_pivot_root),
    ];
    for (name, sys) in expected {
        assert_eq!(nr(name), Some(sys), "{name}");
    }
    let arch = &host_arches()[0];
    assert_eq!(i64::from(arch.clone), libc::SYS_clone);
    assert_eq!(i64::from(arch.clone3), libc::SYS_clone3);
}

#[test]
fn every_architecture_block_fits_a_bpf_jump() {
    for arch in host_arches() {
        assert!(block(&arch).len() <= usize::from(u8::MAX));
    }
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn a_filtered_process_gets_eperm_for_denied_calls_and_runs_the_rest() {
    let filter = Filter::default_for_host().expect("this kernel has seccomp");
    assert!(filter.len() > 100);
    assert_eq!(in_filtered_child(&filter, denied_and_allowed_calls), 0);
}
