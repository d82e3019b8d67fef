//! The RuntimeDefault seccomp profile (a deny list of the syscalls Docker's
//! default profile blocks, answered with EPERM) and its compilation to BPF with
//! seccompiler. Installed by the container setup while it still holds
//! CAP_SYS_ADMIN, so it does not force no_new_privs.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Syscalls denied by RuntimeDefault.
const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
];

/// The RuntimeDefault profile as an OCI seccomp section.
pub fn runtime_default() -> LinuxSeccomp {
    let names: Vec<String> = DENIED.iter().map(|s| s.to_string()).collect();
    let rule = LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EPERM as u32)
        .build()
        .unwrap_or_default();
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![rule])
        .build()
        .unwrap_or_default()
}

fn syscall_nr(name: &str) -> Option<i64> {
    use libc::*;
    Some(match name {
        "acct" => SYS_acct,
        "add_key" => SYS_add_key,
        "bpf" => SYS_bpf,
        "clock_adjtime" => SYS_clock_adjtime,
        "clock_settime" => SYS_clock_settime,
        "delete_module" => SYS_delete_module,
        "finit_module" => SYS_finit_module,
        "fsconfig" => SYS_fsconfig,
        "fsmount" => SYS_fsmount,
        "fsopen" => SYS_fsopen,
        "fspick" => SYS_fspick,
        "get_mempolicy" => SYS_get_mempolicy,
        "init_module" => SYS_init_module,
        #[cfg(target_arch = "x86_64")]
        "ioperm" => SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        "iopl" => SYS_iopl,
        "kcmp" => SYS_kcmp,
        "kexec_file_load" => SYS_kexec_file_load,
        "kexec_load" => SYS_kexec_load,
        "keyctl" => SYS_keyctl,
        "lookup_dcookie" => SYS_lookup_dcookie,
        "mbind" => SYS_mbind,
        "mount" => SYS_mount,
        "move_mount" => SYS_move_mount,
        "move_pages" => SYS_move_pages,
        "name_to_handle_at" => SYS_name_to_handle_at,
        "open_by_handle_at" => SYS_open_by_handle_at,
        "open_tree" => SYS_open_tree,
        "perf_event_open" => SYS_perf_event_open,
        "pivot_root" => SYS_pivot_root,
        "process_vm_readv" => SYS_process_vm_readv,
        "process_vm_writev" => SYS_process_vm_writev,
        "ptrace" => SYS_ptrace,
        "quotactl" => SYS_quotactl,
        "reboot" => SYS_reboot,
        "request_key" => SYS_request_key,
        "set_mempolicy" => SYS_set_mempolicy,
        "setns" => SYS_setns,
        "settimeofday" => SYS_settimeofday,
        "swapoff" => SYS_swapoff,
        "swapon" => SYS_swapon,
        "syslog" => SYS_syslog,
        "umount2" => SYS_umount2,
        "unshare" => SYS_unshare,
        "userfaultfd" => SYS_userfaultfd,
        _ => return None,
    })
}

/// Compiles an OCI seccomp section of the shape [`runtime_default`] makes
/// (default allow, listed syscalls errno). Unknown syscall names are skipped.
pub fn compile(s: &LinuxSeccomp) -> Result<BpfProgram, String> {
    let mut errno = libc::EPERM as u32;
    let mut rules = BTreeMap::new();
    for sc in s.syscalls().iter().flatten() {
        if let Some(e) = sc.errno_ret() {
            errno = e;
        }
        for n in sc.names() {
            if let Some(nr) = syscall_nr(n) {
                rules.insert(nr, Vec::new());
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    let arch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    let arch = TargetArch::aarch64;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp filter: {e}"))
}

/// Installs a compiled filter on the calling thread (needs CAP_SYS_ADMIN or
/// no_new_privs).
pub fn install(prog: &BpfProgram) -> Result<(), std::io::Error> {
    let filters: Vec<libc::sock_filter> = prog
        .iter()
        .map(|f| libc::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the kernel copies the program from `fprog`, which points at
    // `filters`, alive for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles_and_knows_every_name() {
        for n in DENIED {
            #[cfg(not(target_arch = "x86_64"))]
            if *n == "ioperm" || *n == "iopl" {
                continue;
            }
            assert!(syscall_nr(n).is_some(), "{n}");
        }
        let prog = compile(&runtime_default()).unwrap();
        assert!(prog.len() > DENIED.len());
    }
}
