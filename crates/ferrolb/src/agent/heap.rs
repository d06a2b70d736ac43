//! Giving freed heap memory back to the system.
//!
//! Working out what a node announces builds large short-lived structures (the allocation,
//! the election, the BGP plan, the routes per session) and then frees them. glibc's
//! allocator keeps freed pages it cannot hand back from the top of its heap: after a
//! recompute over 10,000 Services about a third of the agent's resident memory was such
//! free pages (measured in the BGP benchmark: 62 MiB resident before `malloc_trim`, 44 MiB
//! after). [`release_free_memory`] returns them; the agent calls it after each
//! recompute that handled many Services. Other C libraries (musl, for the static
//! binary) return freed memory on their own, and there the call does nothing.

/// Returns freed heap pages to the system (glibc: `malloc_trim(0)`), so that the resident
/// size reflects what is in use.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free chunks; it
    // takes the allocator's locks itself and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
