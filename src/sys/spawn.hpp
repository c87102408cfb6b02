// Private: what the seam's spawn entry needs to start a child (src/sys/spawn.cpp).
//
// Everything is prepared by the parent (src/internet/process.cpp) before the
// child exists, so the child does no allocation and no library call that is
// not a plain system call: it runs on a stack of its own inside the parent's
// memory (clone with CLONE_VM | CLONE_VFORK) while the parent waits, until
// execve replaces it or it exits.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace weft::sys {

struct SpawnRequest {
    // What to run: a path (already looked up on PATH), argv and envp, each
    // ending with a null pointer.
    const char* file = nullptr;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    // The working directory, or null for the parent's.
    const char* cwd = nullptr;
    // The child's descriptors: child fd to[i] becomes a copy of parent fd
    // from[i]. The child first copies every source at or below maxTarget
    // above it (scratch[i]; a source already above stays where it is), so no
    // dup2 can overwrite a source another one still needs: swaps, aliases and
    // descriptors that stay put all work (FDMAP-4). A dup2 of a descriptor
    // onto itself is a no-op that would keep close-on-exec, which the copy
    // also avoids.
    // Every other descriptor is closed: those above maxTarget with
    // close_range, those at or below it that are not a target one by one.
    const int* from = nullptr;
    const int* to = nullptr;
    int* scratch = nullptr;  // count entries, written by the child
    int count = 0;
    int maxTarget = -1;
    // Sessions and groups: a new session (a terminal's child), or a process
    // group of its own. ctty: the child fd that is its terminal (TIOCSCTTY after
    // setsid), or -1.
    bool newSession = false;
    bool newGroup = false;
    int ctty = -1;
    // Ids, in this order: setgroups(groups), then gid, then uid (PROC-8).
    bool setIds = false;
    uid_t uid = 0;
    gid_t gid = 0;
    const gid_t* groups = nullptr;
    std::size_t groupCount = 0;

    // Filled in when the child fails before exec: its errno and the step.
    enum class Step : int { none, signals, session, descriptors, terminal, directory, groups, gid, uid, exec };
    int error = 0;
    Step failedStep = Step::none;
};

/// The name of a step, for messages ("chdir", "setuid", "execve", …).
const char* stepName(SpawnRequest::Step step) noexcept;

/// Waits for child `pid` on a detached thread of its own until it ends, then
/// reaps it and closes `pidfd` (waiting through it when it is not -1): for a
/// child whose reactor is gone, so that it never stays a zombie. Not through
/// sys::ops: tests replace the table on the main thread only, and this thread
/// may outlive any test. False (and `pidfd` closed) if no thread could start.
bool reapOnOwnThread(pid_t pid, int pidfd) noexcept;

}  // namespace weft::sys
