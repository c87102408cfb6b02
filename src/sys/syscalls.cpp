#include "sys/syscalls.hpp"

#include <unistd.h>

namespace weft::sys {

const Ops kernelOps{
    ::read, ::write, ::readv, ::writev, ::recv, ::send, ::recvmsg, ::sendmsg, ::accept4, ::connect, ::close, ::recvmmsg,
};

Ops ops = kernelOps;

}  // namespace weft::sys
