// Internal: the read buffer shared by the stream connections of one thread
// (TCP and UNIX), so that an idle connection holds no read buffer.
#pragma once

#include <cstddef>
#include <vector>

namespace weft::detail {

struct ScratchBuffer {
    std::vector<std::byte> data;
    bool lent = false;
};
inline thread_local ScratchBuffer scratch;

/// Lends the thread's buffer for one read. A callback that re-enters the loop
/// and reads on this thread while the buffer is lent out gets a private one.
class BorrowedBuffer {
public:
    explicit BorrowedBuffer(std::size_t size) {
        if (!scratch.lent) {
            if (scratch.data.size() < size) scratch.data.resize(size);
            scratch.lent = true;
            borrowed_ = true;
            data_ = scratch.data.data();
        } else {
            own_.resize(size);
            data_ = own_.data();
        }
    }
    ~BorrowedBuffer() {
        if (borrowed_) scratch.lent = false;
    }
    BorrowedBuffer(const BorrowedBuffer&) = delete;
    BorrowedBuffer& operator=(const BorrowedBuffer&) = delete;
    std::byte* data() const noexcept { return data_; }

private:
    std::vector<std::byte> own_;
    std::byte* data_ = nullptr;
    bool borrowed_ = false;
};

}  // namespace weft::detail
