#include "sys/syscalls.hpp"

#include <unistd.h>

namespace weft::sys {

const Ops kernelOps{
    ::read, ::write, ::readv, ::writev, ::recv, ::send, ::recvmsg, ::sendmsg, ::accept4, ::connect, ::close, ::recvmmsg,
    ::socket, ::bind, ::listen, ::shutdown, ::setsockopt, ::getsockopt, ::getsockname, ::getpeername,
};

Ops ops = kernelOps;

}  // namespace weft::sys
