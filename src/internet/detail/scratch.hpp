// Internal: the read buffer shared by the stream connections of one thread
// (TCP and UNIX), so that an idle connection holds no read buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace weft::detail {

// The thread's buffer. Constant-initialised and trivially destructible, so a
// read reaches it without a TLS initialisation call; the first allocation on a
// thread arms a reaper that frees it when the thread ends.
class WriteQueue;

struct ScratchState {
    std::byte* data = nullptr;
    std::size_t size = 0;
    bool lent = false;
    bool armed = false;
    // Write queues that borrow bytes of the current read (WriteQueue::append):
    // while any does, the buffer stays lent, even after the read ended (held).
    bool held = false;
    std::uint8_t borrowers = 0;
    static constexpr std::uint8_t kMaxBorrowers = 8;
    WriteQueue* list[kMaxBorrowers] = {};
};
constinit inline thread_local ScratchState tScratch{};

/// Copies what the listed queues borrow into their own chunks and, once the
/// read that lent the buffer is over, frees the buffer for the next read. The
/// next read on the thread calls it before reusing the buffer, so what the
/// flush at the end of a dispatch sends is never copied. Defined in abstract.cpp.
void materializeBorrowed() noexcept;

// Reads land on a cache-line boundary: the kernel's copy to user memory runs aligned.
inline constexpr std::align_val_t kAlign{64};

struct ScratchReaper {
    ScratchReaper() = default;
    ScratchReaper(const ScratchReaper&) = delete;
    ScratchReaper& operator=(const ScratchReaper&) = delete;
    ~ScratchReaper() {
        materializeBorrowed();  // queues that outlive the thread keep their bytes
        ::operator delete(static_cast<void*>(tScratch.data), kAlign);
        tScratch.data = nullptr;
        tScratch.size = 0;
    }
};

/// Lends the thread's buffer for one read. A callback that re-enters the loop
/// and reads on this thread while the buffer is lent out gets a private one.
class BorrowedBuffer {
public:
    explicit BorrowedBuffer(std::size_t size) {
        auto& s = tScratch;
        if (s.held) materializeBorrowed();  // an earlier read's bytes are still queued: copy them first
        if (!s.lent) {
            if (s.size < size) grow(size);
            s.lent = true;
            borrowed_ = true;
            data_ = s.data;
        } else {
            own_ = std::make_unique_for_overwrite<std::byte[]>(size);
            data_ = own_.get();
        }
    }
    ~BorrowedBuffer() {
        if (!borrowed_) return;
        if (tScratch.borrowers != 0) tScratch.held = true;  // released by materializeBorrowed()
        else tScratch.lent = false;
    }
    BorrowedBuffer(const BorrowedBuffer&) = delete;
    BorrowedBuffer& operator=(const BorrowedBuffer&) = delete;
    std::byte* data() const noexcept { return data_; }

private:
    static void grow(std::size_t size) {
        auto& s = tScratch;
        if (!s.armed) {
            thread_local ScratchReaper reaper;  // frees the buffer at thread exit
            s.armed = true;
        }
        auto* fresh = static_cast<std::byte*>(::operator new(size, kAlign));
        ::operator delete(static_cast<void*>(s.data), kAlign);
        s.data = fresh;
        s.size = size;
    }

    std::unique_ptr<std::byte[]> own_;
    std::byte* data_ = nullptr;
    bool borrowed_ = false;
};

}  // namespace weft::detail
