// weft/internet/serialport.hpp — a serial line as a transport
// (twisted.internet.serialport, and the parts of pyserial's serialposix that
// Twisted relies on). Spec: serialport.md SER-1 … SER-22.
//
//     auto port = weft::SerialPort::create(protocol, "/dev/ttyUSB0", reactor, 115200);
//
// SerialPort opens a terminal device (/dev/ttyS*, /dev/ttyUSB*, /dev/ttyACM*,
// a pty), configures the line in raw mode and then is a StreamTransport like
// a pipe end: dataReceived() for what arrives, write()/writeSequence() queue
// without blocking, loseConnection() flushes then closes, abortConnection()
// drops what is queued. Beyond Twisted:
//   * any speed the driver accepts: a standard one (50 … 4 000 000) as its
//     Bnnn constant, any other positive one through termios2 (BOTHER,
//     TCSETS2), SER-4;
//   * exclusive access by default (an flock and TIOCEXCL): a second port on
//     the device fails with EBUSY before changing anything, and so does any
//     other open() by an unprivileged process (Options::exclusive);
//   * VMIN = 1, VTIME = 0 with O_NONBLOCK: "no data" is EAGAIN, so a read of
//     0 bytes always means the device hung up (SER-9);
//   * a device that goes away (a USB adapter unplugged, a pty master closed)
//     ends the port once with a reason naming the device (SER-21), never a
//     busy loop;
//   * sendBreak() never blocks the loop (TIOCSBRK, then TIOCCBRK 250 ms
//     later from a callLater, SER-17);
//   * setBaudRate() works (Twisted's calls a pyserial method that no longer
//     exists) and so do the other settings' setters (SER-14, SER-22).
//
// Every ioctl goes through the syscall seam (sys::ops.ioctl). The termios
// structure is computed by a pure function, serial::configureTermios(),
// which the tests check for every combination a pty cannot carry (a pty
// forces CS8 and no parity).
//
// Errors: bad settings throw std::invalid_argument before anything is
// opened; a device that cannot be opened or configured throws
// std::system_error with the errno (ENOENT, ENOTTY, EBUSY, EINVAL…) and a
// message naming the device (and the speed, for a speed the driver refuses).
// When create() throws, no descriptor is left open and the protocol was never
// called.
//
// Ownership is a stream's (docs/ownership.md): the reactor holds the port
// while it reads or writes, the port holds its protocol until the protocol's
// connectionLost() has returned, the protocol holds its transport.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>

#include <weft/export.hpp>
#include <weft/internet/delayedcall.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/stream.hpp>

namespace weft {

namespace serial {

/// Character sizes (Twisted re-exports pyserial's names).
inline constexpr int FIVEBITS = 5;
inline constexpr int SIXBITS = 6;
inline constexpr int SEVENBITS = 7;
inline constexpr int EIGHTBITS = 8;
/// Parities.
inline constexpr char PARITY_NONE = 'N';
inline constexpr char PARITY_EVEN = 'E';
inline constexpr char PARITY_ODD = 'O';
inline constexpr char PARITY_MARK = 'M';
inline constexpr char PARITY_SPACE = 'S';
/// Stop bits (1.5 is set as 2: POSIX has no 1.5).
inline constexpr double STOPBITS_ONE = 1;
inline constexpr double STOPBITS_ONE_POINT_FIVE = 1.5;
inline constexpr double STOPBITS_TWO = 2;

/// How a line is set up.
struct WEFT_EXPORT Options {
    /// Bits per second: any positive value (SER-4).
    int baudrate = 9600;
    /// 5, 6, 7 or 8 (SER-5).
    int bytesize = EIGHTBITS;
    /// 'N', 'E', 'O', 'M' or 'S' (SER-6).
    char parity = PARITY_NONE;
    /// 1, 1.5 or 2 (SER-7).
    double stopbits = STOPBITS_ONE;
    /// Software flow control: IXON|IXOFF (SER-8).
    bool xonxoff = false;
    /// Hardware flow control: CRTSCTS (SER-8).
    bool rtscts = false;
    /// Exclusive use, until this port closes: an flock(LOCK_EX) on the device
    /// (a port that finds it taken fails with EBUSY before changing
    /// anything; other programs that lock, such as pyserial's exclusive
    /// mode, are kept out too, root included) and TIOCEXCL (any other open()
    /// fails with EBUSY, except in a process with CAP_SYS_ADMIN).
    bool exclusive = true;
};

/// Throws std::invalid_argument naming the bad value if `options` has a
/// baudrate that is not positive, a bytesize outside 5..8, an unknown parity
/// or stop bits other than 1, 1.5 and 2.
WEFT_EXPORT void validate(const Options& options);

/// The Linux `struct termios2` (TCGETS2/TCSETS2), field for field, so that
/// code that includes <termios.h> (whose struct termios differs) can use it.
/// The flag values are the kernel's (<asm/termbits.h>), which <termios.h>
/// also uses.
struct WEFT_EXPORT KernelTermios {
    std::uint32_t c_iflag = 0;
    std::uint32_t c_oflag = 0;
    std::uint32_t c_cflag = 0;
    std::uint32_t c_lflag = 0;
    std::uint8_t c_line = 0;
    std::array<std::uint8_t, 19> c_cc{};
    std::uint32_t c_ispeed = 0;
    std::uint32_t c_ospeed = 0;
    bool operator==(const KernelTermios&) const = default;
};

/// The termios structure that sets a line up as `options` says, starting from
/// what the device reported (`current`): raw mode (SER-3), the speed (a
/// standard Bnnn constant in CBAUD, or BOTHER with c_ispeed = c_ospeed =
/// baudrate; the input speed follows the output speed), character size,
/// parity, stop bits, flow control (SER-4 … SER-8), VMIN = 1 and VTIME = 0
/// (SER-9). Bits it does not own are kept. Pure: no system call. Throws as
/// validate() does. (`options.exclusive` plays no part.)
WEFT_EXPORT KernelTermios configureTermios(const KernelTermios& current, const Options& options);

/// The Bnnn constant of a standard speed (B9600 for 9600…), or nothing for a
/// speed that needs BOTHER.
WEFT_EXPORT std::optional<std::uint32_t> standardSpeed(int baudrate) noexcept;

/// The reason a port ends when its device fails (a read or write error, e.g.
/// EIO): a ConnectionLost carrying the errno whose what() names the device.
class WEFT_EXPORT DeviceLost : public error::ConnectionLost {
public:
    DeviceLost(const std::string& device, std::error_code ec);
};

}  // namespace serial

/// A serial line as a transport (Twisted internet.serialport.SerialPort).
///
/// A StreamTransport over the device's descriptor: reading, writing,
/// producers, loseConnection(), abortConnection() and the close are the
/// stream layer's. A serial line has no half-close: the end of the device's
/// input is the end of the port (connectionLost, SER-21), and
/// loseWriteConnection() only flushes (an IHalfCloseableProtocol then hears
/// writeConnectionLost) while reading goes on.
///
/// Each line-control method throws std::logic_error once the port is closed,
/// and std::system_error (naming the device) when the device refuses.
///
/// Closing a real serial device makes the kernel send what it still holds
/// before close() returns (the driver's closing_wait, 30 s at most by
/// default); abortConnection() discards that output first (TCOFLUSH).
class WEFT_EXPORT SerialPort final : public StreamTransport {
public:
    /// Opens `deviceName` (O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC, SER-1), takes
    /// it exclusively (flock, TIOCEXCL) unless told not to, configures it (SER-3 …
    /// SER-9), raises DTR and RTS (RTS left alone with rtscts; a device
    /// without modem lines is fine, SER-10), discards what waits in its input
    /// and output queues (SER-11), then starts reading and calls
    /// protocol->makeConnection() (SER-12) before returning. Throws as the
    /// file comment says; then nothing is left open and the protocol was not
    /// called (SER-2).
    static std::shared_ptr<SerialPort> create(std::shared_ptr<Protocol> protocol, std::string deviceName,
                                              Reactor& reactor, const serial::Options& options);
    /// Twisted's signature: SerialPort(protocol, deviceNameOrPortNumber,
    /// reactor, baudrate, bytesize, parity, stopbits, timeout, xonxoff,
    /// rtscts), with exclusive access. `timeout` is pyserial's read timeout,
    /// which Twisted never uses (the reactor drives the reads): it must be
    /// >= 0 (std::invalid_argument otherwise, as pyserial) and has no effect.
    static std::shared_ptr<SerialPort> create(std::shared_ptr<Protocol> protocol, std::string deviceName,
                                              Reactor& reactor, int baudrate = 9600, int bytesize = serial::EIGHTBITS,
                                              char parity = serial::PARITY_NONE, double stopbits = serial::STOPBITS_ONE,
                                              int timeout = 0, bool xonxoff = false, bool rtscts = false);
    ~SerialPort() override;

    /// The path it was opened with.
    const std::string& deviceName() const noexcept { return device_; }
    /// The settings in force (as asked; the driver may round the speed).
    const serial::Options& options() const noexcept { return options_; }

    /// "<protocol's prefix>,<device>".
    std::string logPrefix() const override;
    /// PipeAddress, both: a serial line has no address.
    Address getPeer() const override { return PipeAddress{}; }
    Address getHost() const override { return PipeAddress{}; }
    /// Not half-closeable: the end of the device's input ends the port.
    IHalfCloseableDescriptor* asHalfCloseable() noexcept override { return nullptr; }
    /// An error event: the device failed or went away (a loss naming it).
    Failure errorReason() const override;
    /// The stream's connectionLost; the reactor's plain ConnectionDone for a
    /// hang-up reported without data (POLLHUP alone) becomes one naming the
    /// device, as a read of 0 bytes does.
    void connectionLost(const Failure& reason) override;

    // ---- settings (SER-14, SER-22) ------------------------------------------
    // Each validates, then applies the whole line setup again with
    // TCSETSW2 (tcsetattr TCSADRAIN: after the kernel has sent what it
    // holds; the transport's own queue is untouched). On failure the
    // settings stay as they were. Caveat: the kernel waits for its output
    // queue inside the call (a few KiB at the current speed; longer while
    // hardware flow control holds the line). A pty has nothing to wait for.

    /// Changes the speed in place, without reopening (SER-14).
    void setBaudRate(int baudrate);
    void setBytesize(int bytesize);
    void setParity(char parity);
    void setStopbits(double stopbits);
    void setXonXoff(bool on);
    void setRtsCts(bool on);

    // ---- the line (SER-15 … SER-18) -----------------------------------------

    /// Received bytes waiting in the kernel (FIONREAD).
    int inWaiting() const;
    /// Discards received bytes the kernel holds (TCIFLUSH).
    void flushInput();
    /// Discards bytes the kernel has not sent yet (TCOFLUSH); the transport's
    /// own write queue is untouched.
    void flushOutput();
    /// Holds the transmit line in break for 250 ms (TIOCSBRK now, TIOCCBRK
    /// from a callLater), without blocking. A call while a break is on does
    /// nothing; the close ends a break in progress.
    void sendBreak();
    /// True while a break is being sent.
    bool breaking() const noexcept { return breakCall_.has_value(); }
    /// Modem-status inputs (TIOCMGET).
    bool getCTS() const;
    bool getDSR() const;
    bool getRI() const;
    bool getCD() const;
    /// Raises (on) or drops the outputs (TIOCMBIS / TIOCMBIC).
    void setDTR(bool on = true);
    void setRTS(bool on = true);

    /// For make_shared only: use create().
    struct Token {};
    SerialPort(Token, Reactor& reactor, int fd, std::string device, const serial::Options& options);

protected:
    /// read(2); 0 (the device hung up) and errors become reasons naming the device.
    ssize_t readSome(std::byte* into, std::size_t room, Reason& failure) override;
    /// writev(2) (FDKind::any); an error becomes a reason naming the device.
    WriteResult writeSomeData(std::span<const iovec> data) override;
    /// Ends a break in progress, drops exclusivity, discards the kernel's
    /// unsent output on abort, then closes.
    void closeDescriptor(bool abort) noexcept override;

private:
    void applySettings(const serial::Options& options);
    int modemBits() const;
    void setModemBit(int bit, bool on, const char* name);
    void endBreak() noexcept;
    error::ConnectionDone hungUp() const;

    std::string device_;
    serial::Options options_;
    std::optional<DelayedCall> breakCall_;
};

namespace endpoints {

/// The "serial:" client endpoint: connect() opens the device with
/// SerialPort::create and fires with the protocol the factory built (for
/// PipeAddress), after its connectionMade(); it fails with create()'s error
/// (nothing opened) or std::runtime_error if the factory builds no protocol.
///
/// Description: serial:DEVICE (or device=DEVICE) with the keywords
/// baudrate=N (a positive integer, default 9600), bytesize=5|6|7|8 (8),
/// parity=N|E|O|M|S (any case; N), stopbits=1|1.5|2 (1), xonxoff=0|1 (0),
/// rtscts=0|1 (0) and exclusive=0|1 (1). Bad values throw
/// InvalidEndpointDescription naming the keyword and the value; a missing
/// device, an unknown keyword, an extra positional field or a device given
/// twice throw EndpointArgumentError. It needs a weft::Reactor
/// (UnsupportedEndpointType otherwise, after the arguments are checked).
/// Registered with registerClientParser("serial", …) by serialport.cpp.
class WEFT_EXPORT SerialClientEndpoint final : public IStreamClientEndpoint {
public:
    SerialClientEndpoint(Reactor& reactor, std::string device, serial::Options options);
    Deferred<std::shared_ptr<Protocol>> connect(std::shared_ptr<Factory> factory) override;

    Reactor& reactor() const noexcept { return reactor_; }
    const std::string& device() const noexcept { return device_; }
    const serial::Options& options() const noexcept { return options_; }

private:
    Reactor& reactor_;
    std::string device_;
    serial::Options options_;
};

}  // namespace endpoints

}  // namespace weft
