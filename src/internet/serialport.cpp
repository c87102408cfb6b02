// Serial ports (weft/internet/serialport.hpp; spec: serialport.md).
//
// This is the one file that includes <asm/termbits.h>: it declares the
// kernel's struct termios and struct termios2 (TCGETS2/TCSETS2, the only way
// to set a speed that has no Bnnn constant), which clash with glibc's
// <termios.h>. Nothing here may include <termios.h>; the header exposes the
// structure as serial::KernelTermios instead.
#include <weft/internet/serialport.hpp>

// clang-format off
#include <sys/ioctl.h>     // TIOCM_* and the ioctl numbers (asm/ioctls.h), without <termios.h>
#include <asm/termbits.h>  // struct termios2, BOTHER, the flag bits
// clang-format on
#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include <weft/internet/base.hpp>
#include <weft/log.hpp>
#include <weft/text.hpp>

#include "internet/detail/deviceparsers.hpp"
#include "sys/syscalls.hpp"

namespace weft {

namespace serial {

namespace {

static_assert(sizeof(termios2{}.c_cc) == sizeof(KernelTermios{}.c_cc), "KernelTermios mirrors struct termios2");
static_assert(VMIN < 19 && VTIME < 19);

struct Speed {
    int rate;
    std::uint32_t constant;
};
constexpr Speed kSpeeds[] = {
    {50, B50},           {75, B75},           {110, B110},         {134, B134},         {150, B150},
    {200, B200},         {300, B300},         {600, B600},         {1200, B1200},       {1800, B1800},
    {2400, B2400},       {4800, B4800},       {9600, B9600},       {19200, B19200},     {38400, B38400},
    {57600, B57600},     {115200, B115200},   {230400, B230400},   {460800, B460800},   {500000, B500000},
    {576000, B576000},   {921600, B921600},   {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
    {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000}, {3500000, B3500000}, {4000000, B4000000},
};

constexpr char kParities[] = {PARITY_NONE, PARITY_EVEN, PARITY_ODD, PARITY_MARK, PARITY_SPACE};

}  // namespace

void validate(const Options& o) {
    if (o.baudrate <= 0)
        throw std::invalid_argument(
            fmt::format("invalid baud rate {}: the speed is a positive number of bits per second", o.baudrate));
    if (o.bytesize < FIVEBITS || o.bytesize > EIGHTBITS)
        throw std::invalid_argument(fmt::format("invalid character size {}: 5, 6, 7 or 8 bits", o.bytesize));
    if (std::find(std::begin(kParities), std::end(kParities), o.parity) == std::end(kParities))
        throw std::invalid_argument(
            fmt::format("invalid parity {}: 'N', 'E', 'O', 'M' or 'S'", quote(std::string(1, o.parity))));
    if (o.stopbits != STOPBITS_ONE && o.stopbits != STOPBITS_ONE_POINT_FIVE && o.stopbits != STOPBITS_TWO)
        throw std::invalid_argument(fmt::format("invalid stop bits {}: 1, 1.5 or 2", o.stopbits));
}

std::optional<std::uint32_t> standardSpeed(int baudrate) noexcept {
    for (const Speed& s : kSpeeds)
        if (s.rate == baudrate) return s.constant;
    return std::nullopt;
}

KernelTermios configureTermios(const KernelTermios& current, const Options& o) {
    validate(o);
    KernelTermios t = current;
    // SER-3: raw, 8-bit clean, receiver on, modem status ignored.
    t.c_cflag |= CLOCAL | CREAD;
    t.c_lflag &= ~static_cast<std::uint32_t>(ICANON | ECHO | ECHOE | ECHOK | ECHONL | ISIG | IEXTEN | ECHOCTL | ECHOKE);
    t.c_oflag &= ~static_cast<std::uint32_t>(OPOST | ONLCR | OCRNL);
    t.c_iflag &= ~static_cast<std::uint32_t>(INLCR | IGNCR | ICRNL | IGNBRK | IUCLC | PARMRK | INPCK | ISTRIP);
    // SER-4: a Bnnn constant, or BOTHER with the rate itself; CIBAUD = 0
    // makes the input speed follow the output speed.
    t.c_cflag &= ~static_cast<std::uint32_t>(CBAUD | CIBAUD);
    t.c_cflag |= standardSpeed(o.baudrate).value_or(BOTHER);
    t.c_ispeed = t.c_ospeed = static_cast<std::uint32_t>(o.baudrate);
    // SER-5
    static constexpr std::uint32_t kSizes[] = {CS5, CS6, CS7, CS8};
    t.c_cflag = (t.c_cflag & ~static_cast<std::uint32_t>(CSIZE)) | kSizes[o.bytesize - FIVEBITS];
    // SER-7: POSIX has no 1.5 stop bits; pyserial sets two.
    if (o.stopbits == STOPBITS_ONE) t.c_cflag &= ~static_cast<std::uint32_t>(CSTOPB);
    else t.c_cflag |= CSTOPB;
    // SER-6
    switch (o.parity) {
        case PARITY_NONE: t.c_cflag &= ~static_cast<std::uint32_t>(PARENB | PARODD | CMSPAR); break;
        case PARITY_EVEN:
            t.c_cflag &= ~static_cast<std::uint32_t>(PARODD | CMSPAR);
            t.c_cflag |= PARENB;
            break;
        case PARITY_ODD:
            t.c_cflag &= ~static_cast<std::uint32_t>(CMSPAR);
            t.c_cflag |= PARENB | PARODD;
            break;
        case PARITY_MARK: t.c_cflag |= PARENB | CMSPAR | PARODD; break;
        default:  // PARITY_SPACE (validated above)
            t.c_cflag |= PARENB | CMSPAR;
            t.c_cflag &= ~static_cast<std::uint32_t>(PARODD);
            break;
    }
    // SER-8
    if (o.xonxoff) t.c_iflag |= IXON | IXOFF;
    else t.c_iflag &= ~static_cast<std::uint32_t>(IXON | IXOFF | IXANY);
    if (o.rtscts) t.c_cflag |= CRTSCTS;
    else t.c_cflag &= ~static_cast<std::uint32_t>(CRTSCTS);
    // SER-9, Better than Twisted: with O_NONBLOCK, VMIN=1 makes "no data"
    // EAGAIN, so a read of 0 bytes can only mean a hang-up.
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return t;
}

DeviceLost::DeviceLost(const std::string& device, std::error_code ec)
    : error::ConnectionLost(error::detail::describe(MESSAGE, {"serial device " + quote(device) + ": " + ec.message()}),
                            ec) {}

}  // namespace serial

namespace {

using serial::KernelTermios;
using serial::Options;

KernelTermios fromKernel(const termios2& k) {
    KernelTermios t;
    t.c_iflag = k.c_iflag;
    t.c_oflag = k.c_oflag;
    t.c_cflag = k.c_cflag;
    t.c_lflag = k.c_lflag;
    t.c_line = k.c_line;
    std::copy(std::begin(k.c_cc), std::end(k.c_cc), t.c_cc.begin());
    t.c_ispeed = k.c_ispeed;
    t.c_ospeed = k.c_ospeed;
    return t;
}

termios2 toKernel(const KernelTermios& t) {
    termios2 k{};
    k.c_iflag = t.c_iflag;
    k.c_oflag = t.c_oflag;
    k.c_cflag = t.c_cflag;
    k.c_lflag = t.c_lflag;
    k.c_line = t.c_line;
    std::copy(t.c_cc.begin(), t.c_cc.end(), std::begin(k.c_cc));
    k.c_ispeed = t.c_ispeed;
    k.c_ospeed = t.c_ospeed;
    return k;
}

// An ioctl whose argument is a value, not a pointer (TCFLSH).
int ioctlValue(int fd, unsigned long request, unsigned long value) {
    return sys::ops.ioctl(fd, request, reinterpret_cast<void*>(value));
}

[[noreturn]] void throwSystem(int e, std::string message) {
    throw std::system_error(e, std::generic_category(), std::move(message));
}

// "speed 115200 bps, 8N1", "speed 123456 bps, 7E2, xonxoff, rtscts".
std::string describe(const Options& o) {
    std::string s = fmt::format("speed {} bps, {}{}{}", o.baudrate, o.bytesize, o.parity, o.stopbits);
    if (o.xonxoff) s += ", xonxoff";
    if (o.rtscts) s += ", rtscts";
    return s;
}

// The line's settings as the device reports them; a non-terminal fails here (ENOTTY).
termios2 readLine(int fd, const std::string& device) {
    termios2 current{};
    if (sys::ops.ioctl(fd, TCGETS2, &current) < 0) {
        int e = errno;
        if (e == ENOTTY || e == EINVAL) throwSystem(e, fmt::format("{} is not a terminal", quote(device)));
        throwSystem(e, fmt::format("cannot read the line settings of serial device {}", quote(device)));
    }
    return current;
}

// Writes `current` back as `o` says, with TCSETS2 (now) or TCSETSW2 (once the
// kernel's output has drained).
void writeLine(int fd, const std::string& device, const termios2& current, const Options& o, unsigned long request) {
    termios2 wanted = toKernel(serial::configureTermios(fromKernel(current), o));
    if (sys::ops.ioctl(fd, request, &wanted) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("serial device {} refused the line settings ({})", quote(device), describe(o)));
    }
}

// Sets the device up on `fd` (SER-3 … SER-11); throws, leaving `fd` open.
void setUp(int fd, const std::string& device, const Options& o) {
    termios2 current = readLine(fd, device);
    if (o.exclusive) {
        // Before anything changes, so a second user cannot disturb the first.
        // flock keeps out every other locking user (weft, pyserial's
        // exclusive mode), root included; TIOCEXCL makes any other open()
        // fail with EBUSY, except for a process with CAP_SYS_ADMIN.
        if (sys::ops.flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            if (e == EWOULDBLOCK)
                throwSystem(EBUSY, fmt::format("serial device {} is in use: another program or port holds its lock",
                                               quote(device)));
            throwSystem(e, fmt::format("cannot lock serial device {}", quote(device)));
        }
        if (sys::ops.ioctl(fd, TIOCEXCL, nullptr) < 0) {
            int e = errno;
            throwSystem(e, fmt::format("cannot take serial device {} for exclusive use", quote(device)));
        }
    }
    writeLine(fd, device, current, o, TCSETS2);
    // SER-10: DTR and RTS up (RTS belongs to the hardware flow control with
    // rtscts); a device without modem lines (a pty) says EINVAL or ENOTTY.
    int lines = TIOCM_DTR | (o.rtscts ? 0 : TIOCM_RTS);
    if (sys::ops.ioctl(fd, TIOCMBIS, &lines) < 0 && errno != EINVAL && errno != ENOTTY) {
        int e = errno;
        throwSystem(e, fmt::format("cannot raise DTR/RTS on serial device {}", quote(device)));
    }
    // SER-11: nothing stale in either direction.
    if (ioctlValue(fd, TCFLSH, TCIOFLUSH) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot flush serial device {}", quote(device)));
    }
}

}  // namespace

// ---- SerialPort ---------------------------------------------------------------------------

SerialPort::SerialPort(Token, Reactor& reactor, int fd, std::string device, const Options& options)
    : StreamTransport(reactor, fd), device_(std::move(device)), options_(options) {}

SerialPort::~SerialPort() {
    if (breakCall_ && breakCall_->active()) breakCall_->cancel();
}

std::shared_ptr<SerialPort> SerialPort::create(std::shared_ptr<Protocol> protocol, std::string deviceName,
                                               Reactor& reactor, const Options& options) {
    if (!protocol) throw std::invalid_argument("SerialPort: null protocol");
    serial::validate(options);  // before anything is opened (SER-2)
    int fd = sys::ops.open(deviceName.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0);  // SER-1
    if (fd < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot open serial device {}", quote(deviceName)));
    }
    try {
        setUp(fd, deviceName, options);
    } catch (...) {
        sys::ops.close(fd);
        throw;
    }
    auto port = std::make_shared<SerialPort>(Token{}, reactor, fd, std::move(deviceName), options);
    // The port owns fd now. If reading cannot start, the port closes and the
    // protocol is never called; a protocol whose connectionMade() throws has
    // the port closed under it (it hears connectionLost with that failure).
    // Either way the error goes to the caller.
    auto keep = protocol;
    try {
        port->startProtocol(std::move(protocol));
    } catch (...) {
        Failure why = Failure::current();
        if (!keep->transport) port->protocol_.reset();  // makeConnection was not reached
        port->connectionLost(why);
        throw;
    }
    return port;
}

std::shared_ptr<SerialPort> SerialPort::create(std::shared_ptr<Protocol> protocol, std::string deviceName,
                                               Reactor& reactor, int baudrate, int bytesize, char parity,
                                               double stopbits, int timeout, bool xonxoff, bool rtscts) {
    if (timeout < 0) throw std::invalid_argument(fmt::format("invalid timeout {}: not negative", timeout));
    Options o;
    o.baudrate = baudrate;
    o.bytesize = bytesize;
    o.parity = parity;
    o.stopbits = stopbits;
    o.xonxoff = xonxoff;
    o.rtscts = rtscts;
    return create(std::move(protocol), std::move(deviceName), reactor, o);
}

std::string SerialPort::logPrefix() const {
    std::string who = protocol_ ? FileDescriptor::getLogPrefix(*protocol_) : std::string("SerialPort");
    return who + "," + device_;
}

Failure SerialPort::errorReason() const {
    // A hung-up terminal fails every ioctl with EIO: that names the cause.
    termios2 probe{};
    if (fd_ >= 0 && sys::ops.ioctl(fd_, TCGETS2, &probe) < 0)
        return Failure(serial::DeviceLost(device_, std::error_code(errno, std::generic_category())));
    return Failure(error::ConnectionLost(fmt::format("serial device {} reported an error", quote(device_))));
}

void SerialPort::connectionLost(const Failure& reason) {
    // The reactor reports a hang-up without data (POLLHUP alone, R-37) as the
    // plain end of the stream; a port that was not closing was hung up.
    if (state() == State::connected && reason.value() == error::connectionDone().value())
        return StreamTransport::connectionLost(Failure(hungUp()));
    StreamTransport::connectionLost(reason);
}

error::ConnectionDone SerialPort::hungUp() const {
    return error::ConnectionDone(fmt::format("serial device {} hung up", quote(device_)));
}

ssize_t SerialPort::readSome(std::byte* into, std::size_t room, Reason& failure) {
    ssize_t n = sys::ops.read(fd_, into, room);
    if (n == 0) {
        // SER-21: with VMIN=1 an empty read is a hang-up (a pty master
        // closed, a USB adapter unplugged), never "no data yet".
        failure = Failure(hungUp());
    } else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        failure = Failure(serial::DeviceLost(device_, std::error_code(errno, std::generic_category())));
    }
    return n;
}

WriteResult SerialPort::writeSomeData(std::span<const iovec> data) {
    WriteResult r = writeToFD(fd_, data);
    if (auto* f = std::get_if<Failure>(&r)) {
        if (auto* lost = f->get<error::ConnectionLost>(); lost && lost->code())
            return Failure(serial::DeviceLost(device_, lost->code()));
    }
    return r;
}

void SerialPort::closeDescriptor(bool abort) noexcept {
    if (fd_ < 0) return;
    if (breakCall_) {
        if (breakCall_->active()) breakCall_->cancel();
        breakCall_.reset();
        sys::ops.ioctl(fd_, TIOCCBRK, nullptr);
    }
    // An abort drops what the kernel still holds, so the close does not wait
    // for it to drain (a tty's close waits up to its closing_wait).
    if (abort) ioctlValue(fd_, TCFLSH, TCOFLUSH);
    if (options_.exclusive) sys::ops.ioctl(fd_, TIOCNXCL, nullptr);
    StreamTransport::closeDescriptor(abort);
}

// ---- settings and the line ----------------------------------------------------------------

namespace {
[[noreturn]] void closedPort(const std::string& device, const char* what) {
    throw std::logic_error(fmt::format("{}: serial device {} is closed", what, quote(device)));
}

// `options` with one setting changed (the setters below).
template <class T>
Options with(Options options, T Options::*setting, std::type_identity_t<T> value) {
    options.*setting = value;
    return options;
}
}  // namespace

void SerialPort::applySettings(const Options& options) {
    if (fd_ < 0) closedPort(device_, "changing the line settings");
    serial::validate(options);
    writeLine(fd_, device_, readLine(fd_, device_), options, TCSETSW2);  // SER-14: TCSADRAIN
    options_ = options;
}

void SerialPort::setBaudRate(int baudrate) { applySettings(with(options_, &Options::baudrate, baudrate)); }

void SerialPort::setBytesize(int bytesize) { applySettings(with(options_, &Options::bytesize, bytesize)); }

void SerialPort::setParity(char parity) { applySettings(with(options_, &Options::parity, parity)); }

void SerialPort::setStopbits(double stopbits) { applySettings(with(options_, &Options::stopbits, stopbits)); }

void SerialPort::setXonXoff(bool on) { applySettings(with(options_, &Options::xonxoff, on)); }

void SerialPort::setRtsCts(bool on) { applySettings(with(options_, &Options::rtscts, on)); }

int SerialPort::inWaiting() const {
    if (fd_ < 0) closedPort(device_, "inWaiting");
    int n = 0;
    if (sys::ops.ioctl(fd_, FIONREAD, &n) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot count the bytes waiting on serial device {}", quote(device_)));
    }
    return n;
}

void SerialPort::flushInput() {
    if (fd_ < 0) closedPort(device_, "flushInput");
    if (ioctlValue(fd_, TCFLSH, TCIFLUSH) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot flush the input of serial device {}", quote(device_)));
    }
}

void SerialPort::flushOutput() {
    if (fd_ < 0) closedPort(device_, "flushOutput");
    if (ioctlValue(fd_, TCFLSH, TCOFLUSH) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot flush the output of serial device {}", quote(device_)));
    }
}

void SerialPort::sendBreak() {
    if (fd_ < 0) closedPort(device_, "sendBreak");
    if (breakCall_) return;  // the line is already held in break
    if (sys::ops.ioctl(fd_, TIOCSBRK, nullptr) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot send a break on serial device {}", quote(device_)));
    }
    // SER-17, Better than Twisted: the loop goes on while the line is held
    // (pyserial's send_break(0.25) sleeps).
    std::weak_ptr<FileDescriptor> weak = weak_from_this();
    breakCall_ = reactor().callLater(0.25, [weak] {
        if (auto self = weak.lock()) static_cast<SerialPort&>(*self).endBreak();
    });
}

void SerialPort::endBreak() noexcept {
    breakCall_.reset();
    if (fd_ < 0) return;
    if (sys::ops.ioctl(fd_, TIOCCBRK, nullptr) < 0) {
        int e = errno;
        log::warn(logPrefix(), "cannot end the break on serial device {}: {}", quote(device_),
                  std::error_code(e, std::generic_category()).message());
    }
}

int SerialPort::modemBits() const {
    if (fd_ < 0) closedPort(device_, "reading the modem lines");
    int bits = 0;
    if (sys::ops.ioctl(fd_, TIOCMGET, &bits) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot read the modem lines of serial device {}", quote(device_)));
    }
    return bits;
}

bool SerialPort::getCTS() const { return (modemBits() & TIOCM_CTS) != 0; }
bool SerialPort::getDSR() const { return (modemBits() & TIOCM_DSR) != 0; }
bool SerialPort::getRI() const { return (modemBits() & TIOCM_RI) != 0; }
bool SerialPort::getCD() const { return (modemBits() & TIOCM_CD) != 0; }

void SerialPort::setModemBit(int bit, bool on, const char* name) {
    if (fd_ < 0) closedPort(device_, name);
    if (sys::ops.ioctl(fd_, on ? TIOCMBIS : TIOCMBIC, &bit) < 0) {
        int e = errno;
        throwSystem(e, fmt::format("cannot {} {} on serial device {}", on ? "raise" : "drop", name, quote(device_)));
    }
}

void SerialPort::setDTR(bool on) { setModemBit(TIOCM_DTR, on, "DTR"); }
void SerialPort::setRTS(bool on) { setModemBit(TIOCM_RTS, on, "RTS"); }

// ---- the "serial:" client endpoint ------------------------------------------------------------

namespace endpoints {

SerialClientEndpoint::SerialClientEndpoint(Reactor& reactor, std::string device, Options options)
    : reactor_(reactor), device_(std::move(device)), options_(options) {}

Deferred<std::shared_ptr<Protocol>> SerialClientEndpoint::connect(std::shared_ptr<Factory> factory) {
    try {
        if (!factory) throw std::invalid_argument("SerialClientEndpoint::connect: null factory");
        auto protocol = factory->buildProtocol(PipeAddress{});
        if (!protocol)
            throw std::runtime_error(fmt::format("serial: the factory built no protocol for {}", quote(device_)));
        SerialPort::create(protocol, device_, reactor_, options_);
        return succeed(std::move(protocol));
    } catch (...) {
        return fail<std::shared_ptr<Protocol>>(Failure::current());
    }
}

namespace {

[[noreturn]] void badValue(const std::string& key, const std::string& value, const char* expected) {
    throw InvalidEndpointDescription(fmt::format("serial: {} must be {}, not {}", key, expected, quote(value)));
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

int parseCount(const std::string& key, const std::string& v, const char* expected) {
    if (v.empty() || v.size() > 10 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
        badValue(key, v, expected);
    long long n = std::stoll(v);
    if (n > INT32_MAX) badValue(key, v, expected);
    return static_cast<int>(n);
}

bool parseFlag(const std::string& key, const std::string& v) {
    std::string l = lower(v);
    if (l == "1" || l == "true") return true;
    if (l == "0" || l == "false") return false;
    badValue(key, v, "0 or 1");
}

// "serial:DEVICE[:keyword=value…]" (see the header).
std::shared_ptr<IStreamClientEndpoint> parseSerialClient(const ReactorRef& reactor, const EndpointDescription& d) {
    if (d.args.size() > 2)
        throw EndpointArgumentError(
            fmt::format("serial: one positional argument (the device) expected, got {}; "
                        "the extra one is {}",
                        d.args.size() - 1, quote(d.args[2])));
    std::string device = d.args.size() == 2 ? d.args[1] : std::string();
    Options o;
    bool deviceKeyword = false;
    for (const auto& [key, value] : d.kwargs) {
        if (key == "device") {
            if (!device.empty()) throw EndpointArgumentError("serial: the device is given twice");
            device = value;
            deviceKeyword = true;
        } else if (key == "baudrate") {
            o.baudrate = parseCount(key, value, "a positive integer (bits per second)");
            if (o.baudrate == 0) badValue(key, value, "a positive integer (bits per second)");
        } else if (key == "bytesize") {
            o.bytesize = parseCount(key, value, "5, 6, 7 or 8");
            if (o.bytesize < serial::FIVEBITS || o.bytesize > serial::EIGHTBITS) badValue(key, value, "5, 6, 7 or 8");
        } else if (key == "parity") {
            std::string l = lower(value);
            if (l == "n" || l == "none") o.parity = serial::PARITY_NONE;
            else if (l == "e" || l == "even") o.parity = serial::PARITY_EVEN;
            else if (l == "o" || l == "odd") o.parity = serial::PARITY_ODD;
            else if (l == "m" || l == "mark") o.parity = serial::PARITY_MARK;
            else if (l == "s" || l == "space") o.parity = serial::PARITY_SPACE;
            else badValue(key, value, "N, E, O, M or S");
        } else if (key == "stopbits") {
            if (value == "1") o.stopbits = serial::STOPBITS_ONE;
            else if (value == "1.5") o.stopbits = serial::STOPBITS_ONE_POINT_FIVE;
            else if (value == "2") o.stopbits = serial::STOPBITS_TWO;
            else badValue(key, value, "1, 1.5 or 2");
        } else if (key == "xonxoff") {
            o.xonxoff = parseFlag(key, value);
        } else if (key == "rtscts") {
            o.rtscts = parseFlag(key, value);
        } else if (key == "exclusive") {
            o.exclusive = parseFlag(key, value);
        } else {
            throw EndpointArgumentError(fmt::format(
                "serial: unknown keyword {} (device, baudrate, bytesize, parity, stopbits, xonxoff, rtscts, exclusive)",
                quote(key)));
        }
    }
    if (device.empty())
        throw EndpointArgumentError(deviceKeyword ? "serial: the device is empty"
                                                  : "serial: missing device (serial:/dev/ttyUSB0)");
    auto* concrete = dynamic_cast<Reactor*>(reactor.find<IReactorFDSet>());
    if (!concrete) throw UnsupportedEndpointType("Endpoint type 'serial' needs a weft::Reactor");
    return std::make_shared<SerialClientEndpoint>(*concrete, std::move(device), o);
}

}  // namespace

// endpoints.cpp's table of built-in client types names it (detail/deviceparsers.hpp),
// which also links this object into every program that parses endpoint strings.
std::shared_ptr<IStreamClientEndpoint> detail::parseSerialClient(const ReactorRef& reactor,
                                                                 const EndpointDescription& d) {
    return endpoints::parseSerialClient(reactor, d);
}

}  // namespace endpoints

}  // namespace weft
