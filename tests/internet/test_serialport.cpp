// serialport.md SER-1..SER-22: weft::SerialPort on real pseudo-terminals (the
// port opens the slave, the test drives the master), on every backend. A pty
// cannot carry parity, character sizes other than 8, modem lines or a driver
// that refuses a speed: SER-5..SER-8 are checked on the pure function that
// computes the termios structure, and modem lines, breaks and refusals
// through the syscall seam (tests/support/faults.hpp, onIoctl).
//
// This file includes <asm/termbits.h> (struct termios2, TCGETS2) to read
// settings back, so it must not include <termios.h>.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asm/termbits.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <weft/internet/endpoints.hpp>
#include <weft/internet/error.hpp>
#include <weft/internet/serialport.hpp>
#include <weft/internet/testing.hpp>
#include <weft/testing/defer.hpp>

#include "support/faults.hpp"
#include "support/reactortest.hpp"

using namespace weft;
using namespace weft::test;
namespace err = weft::error;
namespace fs = std::filesystem;
using serial::KernelTermios;

namespace {

// ---- helpers ------------------------------------------------------------------------------

// A pseudo-terminal: the test holds the master (non-blocking); the port opens
// the slave by its path.
struct Pty {
    Pty() {
        master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) return;
        char name[128];
        if (::ptsname_r(master, name, sizeof name) == 0) slave = name;
    }
    ~Pty() { closeMaster(); }
    Pty(const Pty&) = delete;
    Pty& operator=(const Pty&) = delete;
    void closeMaster() {
        if (master >= 0) ::close(master);
        master = -1;
    }
    // Everything the master can read now.
    std::string drain() const {
        std::string out;
        char buf[65536];
        while (true) {
            ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    }
    int master = -1;
    std::string slave;
};

// Records every call; optionally half-closeable.
class Recorder : public Protocol, public IHalfCloseableProtocol {
public:
    int made = 0, lost = 0, writeLost = 0;
    std::string received;
    std::optional<Failure> lostReason;
    std::function<void(Recorder&)> onMade, onLost, onWriteLost;
    std::function<void(Recorder&, std::string_view)> onData;

    void connectionMade() override {
        ++made;
        if (onMade) onMade(*this);
    }
    void dataReceived(Bytes data) override {
        std::string_view s(reinterpret_cast<const char*>(data.data()), data.size());
        received.append(s);
        if (onData) onData(*this, s);
    }
    void connectionLost(const Failure& reason) override {
        ++lost;
        lostReason = reason;
        if (onLost) onLost(*this);
    }
    void readConnectionLost() override { ADD_FAILURE() << "a serial line has no half-close of its input"; }
    void writeConnectionLost() override {
        ++writeLost;
        if (onWriteLost) onWriteLost(*this);
    }
};

std::string allBytes(int times = 1) {
    std::string s;
    for (int t = 0; t < times; ++t)
        for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
    return s;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
    return s;
}

termios2 readBack(int fd) {
    termios2 t{};
    EXPECT_EQ(::ioctl(fd, TCGETS2, &t), 0) << std::strerror(errno);
    return t;
}

int exclusiveFlag(int fd) {
    int on = -1;
    EXPECT_EQ(::ioctl(fd, TIOCGEXCL, &on), 0) << std::strerror(errno);
    return on;
}

// The errno of an open() of `path` by a child process without CAP_SYS_ADMIN
// (TIOCEXCL does not stop a process that has it), or 0 if it succeeded.
int openWithoutSysAdmin(const std::string& path) {
    pid_t pid = ::fork();
    if (pid == 0) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2]{};
        if (::syscall(SYS_capget, &header, data) != 0) ::_exit(200);
        data[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
        if (::syscall(SYS_capset, &header, data) != 0) ::_exit(201);
        int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK);
        ::_exit(fd < 0 ? errno : 0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class SerialTest : public ReactorTest {
protected:
    void SetUp() override {
        ReactorTest::SetUp();
        if (::access("/dev/ptmx", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/ptmx on this machine";
    }

    std::shared_ptr<SerialPort> open(const std::shared_ptr<Protocol>& protocol, const std::string& device,
                                     const serial::Options& options = {}) {
        return SerialPort::create(protocol, device, reactor(), options);
    }

    // Writes `data` into the master, letting the reactor run while the pty is full.
    void feed(const Pty& pty, std::string_view data) {
        std::size_t off = 0;
        double end = reactor().seconds() + 10;
        while (off < data.size() && reactor().seconds() < end) {
            ssize_t n = ::write(pty.master, data.data() + off, std::min<std::size_t>(data.size() - off, 4096));
            if (n > 0) off += static_cast<std::size_t>(n);
            else reactor().iterate(0.001);
        }
        ASSERT_EQ(off, data.size()) << "the pty did not take the data";
    }

    // Reads `n` bytes from the master while the reactor runs.
    std::string collect(const Pty& pty, std::size_t n, double seconds = 10) {
        std::string got;
        spinUntil(
            [&] {
                got += pty.drain();
                return got.size() >= n;
            },
            seconds);
        return got;
    }

    // Closes the port and waits for its connectionLost.
    void closePort(const std::shared_ptr<SerialPort>& port, const std::shared_ptr<Recorder>& proto) {
        port->loseConnection();
        ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; })) << "connectionLost never came";
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, SerialTest, allBackends(), backendParamName);

// The pure function and the validation: no reactor, no device.
class SerialTermiosTest : public LeakCheckedTest {};

// A starting point with every bit the function should clear set, and none it should set.
KernelTermios dirty() {
    KernelTermios t;
    t.c_iflag = INLCR | IGNCR | ICRNL | IGNBRK | IUCLC | PARMRK | INPCK | ISTRIP | IXON | IXOFF | IXANY | BRKINT;
    t.c_oflag = OPOST | ONLCR | OCRNL;
    t.c_cflag = B38400 | (B4800 << IBSHIFT) | CS6 | CSTOPB | PARENB | PARODD | CMSPAR | CRTSCTS | HUPCL;
    t.c_lflag = ICANON | ECHO | ECHOE | ECHOK | ECHONL | ISIG | IEXTEN | ECHOCTL | ECHOKE | TOSTOP;
    t.c_line = 0;
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 7;
    t.c_cc[VINTR] = 3;
    t.c_ispeed = t.c_ospeed = 38400;
    return t;
}

// Every combination of the settings a pty cannot carry.
template <class F>
void forEveryCombination(F&& check) {
    for (int bytesize : {5, 6, 7, 8})
        for (char parity : {'N', 'E', 'O', 'M', 'S'})
            for (double stopbits : {1.0, 1.5, 2.0})
                for (bool xonxoff : {false, true})
                    for (bool rtscts : {false, true}) {
                        serial::Options o;
                        o.baudrate = 19200;
                        o.bytesize = bytesize;
                        o.parity = parity;
                        o.stopbits = stopbits;
                        o.xonxoff = xonxoff;
                        o.rtscts = rtscts;
                        SCOPED_TRACE(::testing::Message() << bytesize << parity << stopbits << " xonxoff=" << xonxoff
                                                          << " rtscts=" << rtscts);
                        check(o, serial::configureTermios(dirty(), o));
                    }
}

// ---- SER-1, SER-2: opening ------------------------------------------------------------------

TEST_P(SerialTest, SER_1_opensReadWriteNonBlockingCloseOnExecWithoutControllingTerminal) {
    // SER-1: the device is opened O_RDWR|O_NOCTTY|O_NONBLOCK (plus O_CLOEXEC): a session leader without a terminal does not acquire it.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    int fd = port->fileno();
    int flags = ::fcntl(fd, F_GETFL);
    EXPECT_EQ(flags & O_ACCMODE, O_RDWR);
    EXPECT_TRUE(flags & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    closePort(port, proto);

    // O_NOCTTY: a child that leads a new session (no terminal yet) opens the port.
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setsid();
        auto r = Reactor::create(Backend::poll);  // the child's own: the parent's epoll set is shared
        auto p = std::make_shared<Recorder>();
        try {
            auto child = SerialPort::create(p, pty.slave, *r, serial::Options{});
            std::ifstream stat("/proc/self/stat");
            std::string line;
            std::getline(stat, line);
            std::istringstream rest(line.substr(line.rfind(')') + 2));
            std::string state, ppid, pgrp, session, ttyNr;
            rest >> state >> ppid >> pgrp >> session >> ttyNr;
            ::_exit(ttyNr == "0" ? 0 : 3);
        } catch (...) {
            ::_exit(4);
        }
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "3: the port became the child's controlling terminal; 4: it did not open";
}

TEST_P(SerialTest, SER_2_aMissingPathThrowsEnoentNamingItAndLeavesNothing) {
    // SER-2: a path that does not exist throws std::system_error with ENOENT naming it; no fd left open, no protocol call.
    auto proto = std::make_shared<Recorder>();
    try {
        open(proto, "/nonexistent/ttyUSB9");
        ADD_FAILURE() << "opened a missing device";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_THAT(e.what(), ::testing::HasSubstr("'/nonexistent/ttyUSB9'"));
    }
    EXPECT_EQ(proto->made, 0);
    EXPECT_EQ(proto->lost, 0);
    EXPECT_TRUE(reactor().getReaders().empty());
}

TEST_P(SerialTest, SER_2_aNonTerminalThrowsEnottyAndClosesIt) {
    // SER-2: a device that is not a terminal (a regular file, /dev/null) fails configuration with ENOTTY; the descriptor opened is closed, the protocol never called.
    auto file = fs::temp_directory_path() / ("weft-serial-" + std::to_string(::getpid()));
    std::ofstream(file) << "not a tty";
    for (std::string path : {file.string(), std::string("/dev/null")}) {
        SCOPED_TRACE(path);
        auto proto = std::make_shared<Recorder>();
        ScopedFaults faults;
        try {
            open(proto, path);
            ADD_FAILURE() << "opened a non-terminal";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ENOTTY);
            EXPECT_THAT(e.what(), ::testing::HasSubstr("'" + path + "' is not a terminal"));
        }
        EXPECT_EQ(faults.calls(Call::open), 1u);
        EXPECT_EQ(faults.calls(Call::close), 1u) << "the descriptor opened was closed";
        EXPECT_EQ(proto->made, 0);
    }
    fs::remove(file);
}

TEST_P(SerialTest, SER_2_aSpeedTheDriverRefusesNamesTheDeviceAndTheSpeed) {
    // SER-2/SER-4: EINVAL from the driver when the line is set throws std::system_error(EINVAL) naming the device and the speed; the device is closed, the protocol never called.
    Pty pty;
    ScopedFaults faults;
    faults.failIoctl(TCSETS2, EINVAL);
    auto proto = std::make_shared<Recorder>();
    serial::Options o;
    o.baudrate = 123456;
    try {
        open(proto, pty.slave, o);
        ADD_FAILURE() << "a refused speed was accepted";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EINVAL);
        EXPECT_THAT(e.what(), ::testing::HasSubstr("'" + pty.slave + "'"));
        EXPECT_THAT(e.what(), ::testing::HasSubstr("123456"));
    }
    EXPECT_EQ(faults.calls(Call::close), 1u);
    EXPECT_EQ(proto->made, 0);
}

TEST_P(SerialTest, SER_2_aFailureAtEveryStepOfTheSetUpClosesTheDevice) {
    // SER-2: whichever set-up ioctl fails (reading the settings, writing them, TIOCEXCL, raising DTR/RTS with an errno other than EINVAL/ENOTTY, the flush), create() throws that errno and closes the device exactly once; no protocol call, nothing registered.
    for (unsigned long step : {static_cast<unsigned long>(TCGETS2), static_cast<unsigned long>(TCSETS2),
                               static_cast<unsigned long>(TIOCEXCL), static_cast<unsigned long>(TIOCMBIS),
                               static_cast<unsigned long>(TCFLSH)}) {
        SCOPED_TRACE(step);
        Pty pty;
        ScopedFaults faults;
        faults.failIoctl(step, EIO);
        auto proto = std::make_shared<Recorder>();
        try {
            open(proto, pty.slave);
            ADD_FAILURE() << "the set-up failure was ignored";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), EIO);
            EXPECT_THAT(e.what(), ::testing::HasSubstr(pty.slave));
        }
        EXPECT_EQ(faults.calls(Call::close), 1u);
        EXPECT_EQ(proto->made, 0);
        EXPECT_TRUE(reactor().getReaders().empty());
    }
    // The lock taken for exclusive use.
    Pty pty;
    ScopedFaults faults;
    faults.fail(Call::flock, ENOLCK);
    auto proto = std::make_shared<Recorder>();
    try {
        open(proto, pty.slave);
        ADD_FAILURE() << "the lock failure was ignored";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOLCK);
        EXPECT_THAT(e.what(), ::testing::HasSubstr(pty.slave));
    }
    EXPECT_EQ(faults.calls(Call::close), 1u);
    EXPECT_EQ(proto->made, 0);
}

TEST_P(SerialTest, SER_2_badSettingsThrowBeforeAnythingIsOpened) {
    // SER-2, SER-4..SER-7: a bad speed, size, parity or stop bits throws std::invalid_argument naming the value, before the device is opened (no open call at all).
    Pty pty;
    ScopedFaults faults;
    auto proto = std::make_shared<Recorder>();
    EXPECT_THROW(SerialPort::create(proto, pty.slave, reactor(), -9600), std::invalid_argument);
    EXPECT_THROW(SerialPort::create(proto, pty.slave, reactor(), 9600, 9), std::invalid_argument);
    EXPECT_THROW(SerialPort::create(proto, pty.slave, reactor(), 9600, 8, 'X'), std::invalid_argument);
    EXPECT_THROW(SerialPort::create(proto, pty.slave, reactor(), 9600, 8, 'N', 3), std::invalid_argument);
    EXPECT_THROW(SerialPort::create(proto, pty.slave, reactor(), 9600, 8, 'N', 1, -1), std::invalid_argument);
    EXPECT_THROW(SerialPort::create(nullptr, pty.slave, reactor()), std::invalid_argument);
    try {
        SerialPort::create(proto, pty.slave, reactor(), 9600, 8, 'Q');
    } catch (const std::invalid_argument& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("'Q'"));
    }
    EXPECT_EQ(faults.calls(Call::open), 0u);
    EXPECT_EQ(proto->made, 0);
}

// ---- SER-3 .. SER-9: configuration ----------------------------------------------------------

TEST_P(SerialTest, SER_3_theLineIsRawAfterOpening) {
    // SER-3: CLOCAL|CREAD set; ICANON, ECHO, ECHOE, ECHOK, ECHONL, ISIG, IEXTEN, ECHOCTL, ECHOKE, OPOST, ONLCR, OCRNL, INLCR, IGNCR, ICRNL, IGNBRK, IUCLC, PARMRK, INPCK, ISTRIP cleared, as the device reports it.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    termios2 t = readBack(port->fileno());
    EXPECT_EQ(t.c_cflag & (CLOCAL | CREAD), static_cast<tcflag_t>(CLOCAL | CREAD));
    EXPECT_EQ(t.c_lflag & (ICANON | ECHO | ECHOE | ECHOK | ECHONL | ISIG | IEXTEN | ECHOCTL | ECHOKE), 0u);
    EXPECT_EQ(t.c_oflag & (OPOST | ONLCR | OCRNL), 0u);
    EXPECT_EQ(t.c_iflag & (INLCR | IGNCR | ICRNL | IGNBRK | IUCLC | PARMRK | INPCK | ISTRIP), 0u);
    closePort(port, proto);
}

TEST_P(SerialTest, SER_3_all256ByteValuesPassUnchangedBothWays) {
    // SER-3: every byte value (CR, LF, ^C, ^D, ^S/^Q, DEL, 0xff…) arrives unchanged in both directions.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    const std::string bytes = allBytes(4);
    feed(pty, bytes);
    ASSERT_TRUE(spinUntil([&] { return proto->received.size() >= bytes.size(); }));
    EXPECT_TRUE(proto->received == bytes) << "device → protocol changed the bytes";
    port->write(bytes);
    std::string out = collect(pty, bytes.size());
    EXPECT_TRUE(out == bytes) << "protocol → device changed the bytes (" << out.size() << " bytes)";
    closePort(port, proto);
}

TEST_F(SerialTermiosTest, SER_3_rawModeFromAnyStartingPoint) {
    // SER-3: whatever the device reported, configureTermios sets CLOCAL|CREAD and clears every processing flag of the raw-mode list, keeping bits it does not own (BRKINT, HUPCL, TOSTOP, VINTR).
    forEveryCombination([](const serial::Options&, const KernelTermios& t) {
        EXPECT_EQ(t.c_cflag & (CLOCAL | CREAD), static_cast<std::uint32_t>(CLOCAL | CREAD));
        EXPECT_EQ(t.c_lflag & (ICANON | ECHO | ECHOE | ECHOK | ECHONL | ISIG | IEXTEN | ECHOCTL | ECHOKE), 0u);
        EXPECT_EQ(t.c_oflag & (OPOST | ONLCR | OCRNL), 0u);
        EXPECT_EQ(t.c_iflag & (INLCR | IGNCR | ICRNL | IGNBRK | IUCLC | PARMRK | INPCK | ISTRIP), 0u);
        EXPECT_TRUE(t.c_iflag & BRKINT);
        EXPECT_TRUE(t.c_cflag & HUPCL);
        EXPECT_TRUE(t.c_lflag & TOSTOP);
        EXPECT_EQ(t.c_cc[VINTR], 3);
    });
}

TEST_F(SerialTermiosTest, SER_4_everyStandardSpeedUsesItsConstantAndOthersUseBother) {
    // SER-4: 50 … 4000000 select their Bnnn constant in CBAUD; any other positive speed is BOTHER with c_ispeed = c_ospeed = the speed; the input speed bits (CIBAUD) are cleared so input follows output.
    const std::pair<int, unsigned> standard[] = {
        {50, B50},           {75, B75},           {110, B110},         {134, B134},         {150, B150},
        {200, B200},         {300, B300},         {600, B600},         {1200, B1200},       {1800, B1800},
        {2400, B2400},       {4800, B4800},       {9600, B9600},       {19200, B19200},     {38400, B38400},
        {57600, B57600},     {115200, B115200},   {230400, B230400},   {460800, B460800},   {500000, B500000},
        {576000, B576000},   {921600, B921600},   {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
        {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000}, {3500000, B3500000}, {4000000, B4000000}};
    for (auto [rate, constant] : standard) {
        serial::Options o;
        o.baudrate = rate;
        KernelTermios t = serial::configureTermios(dirty(), o);
        EXPECT_EQ(t.c_cflag & CBAUD, constant) << rate;
        EXPECT_EQ(t.c_cflag & CIBAUD, 0u) << rate;
        EXPECT_EQ(t.c_ospeed, static_cast<unsigned>(rate));
        EXPECT_EQ(serial::standardSpeed(rate), std::optional<std::uint32_t>(constant));
    }
    for (int rate : {1, 49, 123456, 250000, 4000001, 12000000, INT32_MAX}) {
        serial::Options o;
        o.baudrate = rate;
        KernelTermios t = serial::configureTermios(dirty(), o);
        EXPECT_EQ(t.c_cflag & CBAUD, static_cast<unsigned>(BOTHER)) << rate;
        EXPECT_EQ(t.c_cflag & CIBAUD, 0u) << rate;
        EXPECT_EQ(t.c_ispeed, static_cast<unsigned>(rate));
        EXPECT_EQ(t.c_ospeed, static_cast<unsigned>(rate));
        EXPECT_FALSE(serial::standardSpeed(rate));
    }
}

TEST_F(SerialTermiosTest, SER_4_aSpeedThatIsNotPositiveIsRejected) {
    // SER-4: a negative speed (and 0, which is B0, a hang-up, not a speed) throws std::invalid_argument naming it.
    for (int rate : {0, -1, -115200, INT32_MIN}) {
        serial::Options o;
        o.baudrate = rate;
        EXPECT_THROW(serial::validate(o), std::invalid_argument) << rate;
        try {
            serial::configureTermios({}, o);
            ADD_FAILURE() << rate;
        } catch (const std::invalid_argument& e) {
            EXPECT_THAT(e.what(), ::testing::HasSubstr(std::to_string(rate)));
        }
    }
}

TEST_P(SerialTest, SER_4_aCustomSpeedIsSetWithBotherAndReadsBack) {
    // SER-4: 123456 (no Bnnn constant) is set through TCSETS2 with BOTHER; TCGETS2 reads back 123456 both ways. 115200 reads back as B115200.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    serial::Options o;
    o.baudrate = 123456;
    auto port = open(proto, pty.slave, o);
    termios2 t = readBack(port->fileno());
    EXPECT_EQ(t.c_cflag & CBAUD, static_cast<tcflag_t>(BOTHER));
    EXPECT_EQ(t.c_ospeed, 123456u);
    EXPECT_EQ(t.c_ispeed, 123456u);
    closePort(port, proto);

    auto proto2 = std::make_shared<Recorder>();
    o.baudrate = 115200;
    auto port2 = open(proto2, pty.slave, o);
    t = readBack(port2->fileno());
    EXPECT_EQ(t.c_cflag & CBAUD, static_cast<tcflag_t>(B115200));
    EXPECT_EQ(t.c_ospeed, 115200u);
    closePort(port2, proto2);
}

TEST_F(SerialTermiosTest, SER_5_characterSizesMapToCs5ThroughCs8) {
    // SER-5: bytesize 5, 6, 7, 8 gives CS5…CS8 whatever the other settings; anything else throws std::invalid_argument.
    forEveryCombination([](const serial::Options& o, const KernelTermios& t) {
        const unsigned sizes[] = {CS5, CS6, CS7, CS8};
        EXPECT_EQ(t.c_cflag & CSIZE, sizes[o.bytesize - 5]);
    });
    for (int bad : {0, 4, 9, 16, -8}) {
        serial::Options o;
        o.bytesize = bad;
        EXPECT_THROW(serial::configureTermios({}, o), std::invalid_argument) << bad;
    }
}

TEST_F(SerialTermiosTest, SER_6_parityBitsForEachParity) {
    // SER-6: N clears PARENB|PARODD|CMSPAR; E sets PARENB only; O PARENB|PARODD; M PARENB|CMSPAR|PARODD; S PARENB|CMSPAR; INPCK and ISTRIP stay clear; anything else throws.
    forEveryCombination([](const serial::Options& o, const KernelTermios& t) {
        unsigned bits = t.c_cflag & (PARENB | PARODD | CMSPAR);
        switch (o.parity) {
            case 'N': EXPECT_EQ(bits, 0u); break;
            case 'E': EXPECT_EQ(bits, static_cast<unsigned>(PARENB)); break;
            case 'O': EXPECT_EQ(bits, static_cast<unsigned>(PARENB | PARODD)); break;
            case 'M': EXPECT_EQ(bits, static_cast<unsigned>(PARENB | CMSPAR | PARODD)); break;
            case 'S': EXPECT_EQ(bits, static_cast<unsigned>(PARENB | CMSPAR)); break;
        }
        EXPECT_EQ(t.c_iflag & (INPCK | ISTRIP), 0u);
    });
    for (char bad : {'n', 'e', 'X', '\0', ' '}) {
        serial::Options o;
        o.parity = bad;
        EXPECT_THROW(serial::configureTermios({}, o), std::invalid_argument) << static_cast<int>(bad);
    }
}

TEST_F(SerialTermiosTest, SER_7_stopBits) {
    // SER-7: 1 clears CSTOPB; 1.5 and 2 both set it; anything else throws std::invalid_argument.
    forEveryCombination([](const serial::Options& o, const KernelTermios& t) {
        EXPECT_EQ((t.c_cflag & CSTOPB) != 0, o.stopbits != 1.0);
    });
    for (double bad : {0.0, 0.5, 1.25, 3.0, -1.0}) {
        serial::Options o;
        o.stopbits = bad;
        EXPECT_THROW(serial::configureTermios({}, o), std::invalid_argument) << bad;
    }
}

TEST_F(SerialTermiosTest, SER_8_softwareAndHardwareFlowControl) {
    // SER-8: xonxoff sets IXON|IXOFF (and leaves IXANY alone), off clears IXON, IXOFF and IXANY; rtscts sets CRTSCTS, off clears it.
    forEveryCombination([](const serial::Options& o, const KernelTermios& t) {
        if (o.xonxoff) {
            EXPECT_EQ(t.c_iflag & (IXON | IXOFF), static_cast<unsigned>(IXON | IXOFF));
            EXPECT_TRUE(t.c_iflag & IXANY) << "IXANY is left as it was";
        } else {
            EXPECT_EQ(t.c_iflag & (IXON | IXOFF | IXANY), 0u);
        }
        EXPECT_EQ((t.c_cflag & CRTSCTS) != 0, o.rtscts);
    });
}

TEST_P(SerialTest, SER_8_flowControlAndStopBitsReadBackFromTheDevice) {
    // SER-8/SER-7 on a real pty, which stores them: xonxoff and rtscts read back as IXON|IXOFF and CRTSCTS, two stop bits as CSTOPB.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    serial::Options o;
    o.xonxoff = true;
    o.rtscts = true;
    o.stopbits = 2;
    auto port = open(proto, pty.slave, o);
    termios2 t = readBack(port->fileno());
    EXPECT_EQ(t.c_iflag & (IXON | IXOFF), static_cast<tcflag_t>(IXON | IXOFF));
    EXPECT_TRUE(t.c_cflag & CRTSCTS);
    EXPECT_TRUE(t.c_cflag & CSTOPB);
    closePort(port, proto);
}

TEST_F(SerialTermiosTest, SER_9_vminOneVtimeZero) {
    // SER-9 (Better than Twisted): VMIN=1 and VTIME=0, whatever the device had.
    forEveryCombination([](const serial::Options&, const KernelTermios& t) {
        EXPECT_EQ(t.c_cc[VMIN], 1);
        EXPECT_EQ(t.c_cc[VTIME], 0);
    });
}

TEST_P(SerialTest, SER_9_noDataIsEagainAndNeverClosesThePort) {
    // SER-9: on the device VMIN=1, VTIME=0: a read with nothing pending is EAGAIN, not 0, so an idle port stays open while the loop runs.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    termios2 t = readBack(port->fileno());
    EXPECT_EQ(t.c_cc[VMIN], 1);
    EXPECT_EQ(t.c_cc[VTIME], 0);
    char c;
    errno = 0;
    EXPECT_EQ(::read(port->fileno(), &c, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    {
        ScopedFaults faults;
        faults.onlyFd(port->fileno());
        for (int i = 0; i < 20; ++i) reactor().iterate(0.005);
        EXPECT_EQ(faults.calls(Call::read), 0u) << "no readiness without data";
    }
    EXPECT_EQ(proto->lost, 0);
    EXPECT_TRUE(port->connected());
    closePort(port, proto);
}

// ---- SER-10 .. SER-12: the rest of the opening ----------------------------------------------

TEST_P(SerialTest, SER_10_dtrAndRtsAreRaisedAtOpenAndRtsLeftToRtscts) {
    // SER-10: after configuration DTR and RTS are raised (TIOCMBIS); with rtscts only DTR; the pty's ENOTTY is ignored.
    for (bool rtscts : {false, true}) {
        SCOPED_TRACE(rtscts);
        Pty pty;
        ScopedFaults faults;
        std::vector<int> raised;
        bool configured = false;
        faults.onIoctl([&](int, unsigned long request, void* arg) -> std::optional<int> {
            if (request == TCSETS2) configured = true;
            if (request == TIOCMBIS) {
                EXPECT_TRUE(configured) << "DTR/RTS before the line was configured";
                raised.push_back(*static_cast<int*>(arg));
            }
            return std::nullopt;  // the pty answers (ENOTTY for TIOCMBIS)
        });
        auto proto = std::make_shared<Recorder>();
        serial::Options o;
        o.rtscts = rtscts;
        auto port = open(proto, pty.slave, o);
        ASSERT_EQ(raised.size(), 1u);
        EXPECT_EQ(raised[0], rtscts ? TIOCM_DTR : (TIOCM_DTR | TIOCM_RTS));
        auto records = faults.history(Call::ioctl);
        auto mbis =
            std::find_if(records.begin(), records.end(), [](const CallRecord& r) { return r.request == TIOCMBIS; });
        ASSERT_NE(mbis, records.end());
        EXPECT_EQ(mbis->err, ENOTTY) << "a pty has no modem lines: ignored";
        closePort(port, proto);
    }
}

TEST_P(SerialTest, SER_11_bytesWaitingBeforeTheOpenAreDiscarded) {
    // SER-11: what sat in the device's input before the port opened is flushed (TCIOFLUSH): the protocol never sees it, inWaiting() is 0, later bytes arrive.
    Pty pty;
    {
        // The slave's default line is canonical: a line makes the stale bytes readable.
        int early = ::open(pty.slave.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
        ASSERT_GE(early, 0);
        ASSERT_EQ(::write(pty.master, "stale\n", 6), 6);
        ASSERT_TRUE(spinUntil([&] {
            int n = 0;
            ::ioctl(early, FIONREAD, &n);
            return n == 6;
        }));
        ScopedFaults faults;
        auto proto = std::make_shared<Recorder>();
        auto port = open(proto, pty.slave);
        ::close(early);
        auto records = faults.history(Call::ioctl);
        EXPECT_TRUE(std::any_of(records.begin(), records.end(),
                                [](const CallRecord& r) { return r.request == TCFLSH && r.result == 0; }));
        EXPECT_EQ(port->inWaiting(), 0);
        for (int i = 0; i < 10; ++i) reactor().iterate(0.005);
        feed(pty, "fresh");
        ASSERT_TRUE(spinUntil([&] { return proto->received.size() >= 5; }));
        EXPECT_EQ(proto->received, "fresh");
        closePort(port, proto);
    }
}

TEST_P(SerialTest, SER_12_connectionMadeRunsBeforeCreateReturnsAndReadingHasStarted) {
    // SER-12: create() calls makeConnection (transport set, connectionMade once) and the port reads before create returns.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    bool readingWhenMade = false;
    proto->onMade = [&](Recorder& me) {
        auto readers = reactor().getReaders();
        readingWhenMade = std::any_of(readers.begin(), readers.end(), [&](const auto& r) {
            return dynamic_cast<const SerialPort*>(r.get()) != nullptr;
        });
        EXPECT_TRUE(me.transport);
    };
    auto port = open(proto, pty.slave);
    EXPECT_EQ(proto->made, 1);
    EXPECT_TRUE(readingWhenMade) << "reading starts before connectionMade (so a pause there holds)";
    EXPECT_EQ(proto->transport.get(), static_cast<ITransport*>(port.get()));
    EXPECT_TRUE(port->connected());
    EXPECT_EQ(port->getPeer(), Address(PipeAddress{}));
    EXPECT_THAT(port->logPrefix(), ::testing::HasSubstr(pty.slave));
    feed(pty, "x");
    ASSERT_TRUE(spinUntil([&] { return proto->received == "x"; }));
    closePort(port, proto);
}

TEST_P(SerialTest, SER_12_aThrowingConnectionMadeClosesThePortAndReachesTheCaller) {
    // SER-12/SER-2: an exception from connectionMade propagates out of create(); the port is closed (the protocol hears connectionLost with it), nothing stays registered.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    proto->onMade = [](Recorder&) { throw std::runtime_error("connectionMade fails"); };
    EXPECT_THROW(open(proto, pty.slave), std::runtime_error);
    EXPECT_EQ(proto->lost, 1);
    EXPECT_TRUE(reactor().getReaders().empty());
    proto->transport.reset();

    // Reading cannot start (the poller refuses the descriptor): the protocol is never called.
    ScopedFaults faults;
    faults.fail(Call::epoll_ctl, ENOMEM);
    auto refused = std::make_shared<Recorder>();
    if (GetParam() == Backend::epoll) {
        EXPECT_THROW(open(refused, pty.slave), std::system_error);
        EXPECT_EQ(refused->made + refused->lost, 0);
        EXPECT_EQ(faults.calls(Call::close), 1u);
    }
}

// ---- SER-13 .. SER-18: data and line control -------------------------------------------------

TEST_P(SerialTest, SER_13_bytesFlowInOrderBothWays) {
    // SER-13: 1 MiB from the device arrives in order through dataReceived; 1 MiB written (write and writeSequence) leaves in order without blocking.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    const std::string in = pattern(1 << 20);
    feed(pty, in);
    ASSERT_TRUE(spinUntil([&] { return proto->received.size() >= in.size(); }));
    EXPECT_TRUE(proto->received == in);

    const std::string out = pattern((1 << 20) + 3);
    auto started = std::chrono::steady_clock::now();
    port->write(std::string_view(out).substr(0, 1000));
    std::vector<Bytes> rest{asBytes(std::string_view(out).substr(1000, 500000)),
                            asBytes(std::string_view(out).substr(500000 + 1000))};
    port->writeSequence(rest);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(200)) << "write blocked";
    std::string got = collect(pty, out.size());
    EXPECT_TRUE(got == out) << got.size() << " bytes";
    closePort(port, proto);
}

TEST_P(SerialTest, SER_14_setBaudRateChangesTheSpeedInPlaceKeepingQueuedData) {
    // SER-14: setBaudRate changes the speed of the open port (same descriptor, TCSETSW2 = TCSADRAIN), standard and custom, and nothing queued is lost; a bad speed throws and changes nothing.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    int fd = port->fileno();
    const std::string out = pattern(300000);
    port->write(out);
    ScopedFaults faults;
    faults.onlyFd(fd);
    port->setBaudRate(123456);
    EXPECT_EQ(port->fileno(), fd);
    termios2 t = readBack(fd);
    EXPECT_EQ(t.c_cflag & CBAUD, static_cast<tcflag_t>(BOTHER));
    EXPECT_EQ(t.c_ospeed, 123456u);
    auto records = faults.history(Call::ioctl);
    EXPECT_TRUE(std::any_of(records.begin(), records.end(), [](const CallRecord& r) { return r.request == TCSETSW2; }));
    EXPECT_FALSE(std::any_of(records.begin(), records.end(), [](const CallRecord& r) { return r.request == TCSETS2; }));
    port->setBaudRate(115200);
    EXPECT_EQ(readBack(fd).c_cflag & CBAUD, static_cast<tcflag_t>(B115200));
    EXPECT_EQ(port->options().baudrate, 115200);
    EXPECT_THROW(port->setBaudRate(-5), std::invalid_argument);
    EXPECT_EQ(port->options().baudrate, 115200);
    EXPECT_EQ(readBack(fd).c_cflag & CBAUD, static_cast<tcflag_t>(B115200));
    EXPECT_EQ(faults.calls(Call::close), 0u) << "not reopened";
    std::string got = collect(pty, out.size());
    EXPECT_TRUE(got == out) << got.size() << " bytes";
    closePort(port, proto);
}

TEST_P(SerialTest, SER_15_inWaitingCountsWhatTheKernelHolds) {
    // SER-15: inWaiting() is FIONREAD: 5 after the peer wrote 5 bytes (reading paused), 0 after flushInput().
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    port->pauseProducing();
    EXPECT_EQ(port->inWaiting(), 0);
    feed(pty, "12345");
    EXPECT_TRUE(spinUntil([&] { return port->inWaiting() == 5; }));
    port->flushInput();
    EXPECT_EQ(port->inWaiting(), 0);
    port->resumeProducing();
    for (int i = 0; i < 10; ++i) reactor().iterate(0.005);
    EXPECT_EQ(proto->received, "") << "flushed input is gone";
    closePort(port, proto);
}

TEST_P(SerialTest, SER_16_flushInputAndFlushOutputUseTcflushAndLeaveTheWriteQueue) {
    // SER-16: flushInput is TCFLSH(TCIFLUSH), flushOutput TCFLSH(TCOFLUSH); neither touches the transport's pending write queue.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    port->write(pattern(1 << 20));  // more than the pty takes: most stays queued
    reactor().iterate(0.01);
    std::size_t pending = port->pendingBytes();
    ASSERT_GT(pending, 0u);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    std::vector<unsigned long> args;
    faults.onIoctl([&](int, unsigned long request, void* arg) -> std::optional<int> {
        if (request == TCFLSH) args.push_back(reinterpret_cast<unsigned long>(arg));
        return std::nullopt;
    });
    port->flushInput();
    port->flushOutput();
    EXPECT_EQ(args, (std::vector<unsigned long>{TCIFLUSH, TCOFLUSH}));
    EXPECT_EQ(port->pendingBytes(), pending);
    faults.onIoctl({});
    faults.failIoctl(TCFLSH, EIO);
    EXPECT_THROW(port->flushOutput(), std::system_error);
    faults.onIoctl({});
    port->abortConnection();
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
}

TEST_P(SerialTest, SER_17_sendBreakHoldsTheLineWithoutBlockingTheLoop) {
    // SER-17 (Better than Twisted): sendBreak() raises the break (TIOCSBRK) and returns at once; TIOCCBRK follows from a 250 ms callLater while the loop keeps serving data; a second call during the break does nothing.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    std::vector<std::pair<unsigned long, double>> seen;
    faults.onIoctl([&](int, unsigned long request, void*) -> std::optional<int> {
        if (request == TIOCSBRK || request == TIOCCBRK) seen.emplace_back(request, reactor().seconds());
        return std::nullopt;  // a pty accepts both
    });
    double t0 = reactor().seconds();
    port->sendBreak();
    EXPECT_LT(reactor().seconds() - t0, 0.1) << "sendBreak blocked";
    EXPECT_TRUE(port->breaking());
    port->sendBreak();  // already breaking
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].first, static_cast<unsigned long>(TIOCSBRK));
    EXPECT_EQ(reactor().getDelayedCalls().size(), 1u);
    feed(pty, "during");
    ASSERT_TRUE(spinUntil([&] { return proto->received == "during"; }, 0.2)) << "the loop stalled during the break";
    ASSERT_TRUE(spinUntil([&] { return !port->breaking(); }, 2));
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1].first, static_cast<unsigned long>(TIOCCBRK));
    EXPECT_GE(seen[1].second - seen[0].second, 0.24);
    EXPECT_TRUE(reactor().getDelayedCalls().empty());
    faults.onIoctl({});
    closePort(port, proto);
}

TEST_P(SerialTest, SER_17_closingDuringABreakEndsItAndCancelsTheTimer) {
    // SER-17: loseConnection while a break is on clears the break (TIOCCBRK) before the close and leaves no pending call; a failed TIOCSBRK throws std::system_error naming the device.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    {
        ScopedFaults faults;
        faults.onlyFd(port->fileno());
        port->sendBreak();
        port->loseConnection();
        ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
        EXPECT_FALSE(port->breaking());
        EXPECT_TRUE(reactor().getDelayedCalls().empty());
        auto records = faults.history();
        auto cbrk = std::find_if(records.begin(), records.end(),
                                 [](const CallRecord& r) { return r.call == Call::ioctl && r.request == TIOCCBRK; });
        auto closed =
            std::find_if(records.begin(), records.end(), [](const CallRecord& r) { return r.call == Call::close; });
        ASSERT_NE(cbrk, records.end());
        ASSERT_NE(closed, records.end());
        EXPECT_LT(cbrk - records.begin(), closed - records.begin());
        EXPECT_THROW(port->sendBreak(), std::logic_error) << "closed";
    }

    Pty pty2;
    auto proto2 = std::make_shared<Recorder>();
    auto port2 = open(proto2, pty2.slave);
    ScopedFaults faults;
    faults.onlyFd(port2->fileno());
    faults.failIoctl(TIOCSBRK, EIO);
    try {
        port2->sendBreak();
        ADD_FAILURE();
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EIO);
        EXPECT_THAT(e.what(), ::testing::HasSubstr(pty2.slave));
    }
    EXPECT_FALSE(port2->breaking());
    faults.onIoctl({});
    closePort(port2, proto2);
}

TEST_P(SerialTest, SER_18_modemStatusAndOutputsThroughTheIoctls) {
    // SER-18: getCTS/getDSR/getRI/getCD read TIOCMGET's TIOCM_CTS/DSR/RI/CD bits; setDTR/setRTS raise (TIOCMBIS) or drop (TIOCMBIC) TIOCM_DTR/TIOCM_RTS.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    int status = TIOCM_CTS | TIOCM_RI;
    std::vector<std::pair<unsigned long, int>> outputs;
    faults.onIoctl([&](int, unsigned long request, void* arg) -> std::optional<int> {
        if (request == TIOCMGET) {
            *static_cast<int*>(arg) = status;
            return 0;
        }
        if (request == TIOCMBIS || request == TIOCMBIC) {
            outputs.emplace_back(request, *static_cast<int*>(arg));
            return 0;
        }
        return std::nullopt;
    });
    EXPECT_TRUE(port->getCTS());
    EXPECT_FALSE(port->getDSR());
    EXPECT_TRUE(port->getRI());
    EXPECT_FALSE(port->getCD());
    status = TIOCM_DSR | TIOCM_CD;
    EXPECT_FALSE(port->getCTS());
    EXPECT_TRUE(port->getDSR());
    EXPECT_FALSE(port->getRI());
    EXPECT_TRUE(port->getCD());
    port->setDTR();
    port->setDTR(false);
    port->setRTS(true);
    port->setRTS(false);
    using P = std::pair<unsigned long, int>;
    EXPECT_EQ(outputs, (std::vector<P>{P(TIOCMBIS, TIOCM_DTR), P(TIOCMBIC, TIOCM_DTR), P(TIOCMBIS, TIOCM_RTS),
                                       P(TIOCMBIC, TIOCM_RTS)}));
    faults.onIoctl({});
    closePort(port, proto);
}

TEST_P(SerialTest, SER_18_modemLinesOnAPtyThrowEnotty) {
    // SER-18: on a device without modem lines (a pty) each modem call throws std::system_error(ENOTTY) naming the device; the port stays usable.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    for (auto call : std::vector<std::function<void()>>{[&] { port->getCTS(); }, [&] { port->getDSR(); },
                                                        [&] { port->getRI(); }, [&] { port->getCD(); },
                                                        [&] { port->setDTR(); }, [&] { port->setRTS(false); }}) {
        try {
            call();
            ADD_FAILURE() << "a pty reported modem lines";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ENOTTY);
            EXPECT_THAT(e.what(), ::testing::HasSubstr(pty.slave));
        }
    }
    feed(pty, "ok");
    ASSERT_TRUE(spinUntil([&] { return proto->received == "ok"; }));
    closePort(port, proto);
}

// ---- SER-19 .. SER-21: closing ------------------------------------------------------------------

TEST_P(SerialTest, SER_19_loseConnectionSendsEverythingThenClosesWithConnectionDone) {
    // SER-19: loseConnection() sends everything queued, then closes the device and calls connectionLost(ConnectionDone) once.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    int fd = port->fileno();
    ScopedFaults faults;
    faults.onlyFd(fd);
    const std::string out = pattern(400000);
    port->write(out);
    port->loseConnection();
    std::string got = collect(pty, out.size());
    EXPECT_TRUE(got == out) << got.size() << " bytes";
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    for (int i = 0; i < 5; ++i) reactor().iterate(0.005);
    EXPECT_EQ(proto->lost, 1);
    EXPECT_TRUE(proto->lostReason->check<err::ConnectionDone>());
    EXPECT_EQ(port->fileno(), -1);
    EXPECT_EQ(faults.calls(Call::close), 1u);
    port->write("late");  // ignored
    port->loseConnection();
    EXPECT_THROW(port->inWaiting(), std::logic_error);
    EXPECT_THROW(port->setBaudRate(9600), std::logic_error);
}

TEST_P(SerialTest, SER_20_connectionLostStopsIoAndTheProducerClosesThenTellsTheProtocol) {
    // SER-20: connectionLost(reason): the descriptor's teardown (reading and writing stopped, a registered producer stopped), the device closed, then protocol.connectionLost with the same reason.
    struct Producer : IPushProducer {
        int stopped = 0;
        void pauseProducing() override {}
        void resumeProducing() override {}
        void stopProducing() override { ++stopped; }
    };
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    auto producer = std::make_shared<Producer>();
    port->registerProducer(producer, true);
    proto->onLost = [&](Recorder& me) {
        EXPECT_EQ(producer->stopped, 1) << "the producer is stopped first";
        EXPECT_EQ(me.transport->isConnected(), false);
        EXPECT_EQ(port->fileno(), -1) << "the device is closed before the protocol hears of it";
        EXPECT_TRUE(reactor().getReaders().empty());
        EXPECT_TRUE(reactor().getWriters().empty());
    };
    Failure why(err::ConnectionLost("a reason of our own"));
    port->connectionLost(why);
    EXPECT_EQ(proto->lost, 1);
    EXPECT_EQ(proto->lostReason->value(), why.value()) << "the very same reason";
    port->connectionLost(why);
    EXPECT_EQ(proto->lost, 1) << "once";
}

TEST_P(SerialTest, SER_21_aHungUpDeviceEndsThePortOnceWithConnectionDoneNamingIt) {
    // SER-21: when the other side goes away (the pty master closed, as a USB adapter unplugged), the port ends with connectionLost(ConnectionDone) naming the device, the descriptor is closed exactly once, and the loop never spins on it.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    pty.closeMaster();
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    for (int i = 0; i < 5; ++i) reactor().iterate(0.005);
    EXPECT_EQ(proto->lost, 1);
    EXPECT_TRUE(proto->lostReason->check<err::ConnectionDone>()) << proto->lostReason->getErrorMessage();
    EXPECT_THAT(proto->lostReason->getErrorMessage(), ::testing::HasSubstr("'" + pty.slave + "' hung up"));
    EXPECT_EQ(faults.calls(Call::close), 1u);
    EXPECT_LE(faults.calls(Call::read), 2u) << "no busy loop";
    EXPECT_EQ(port->fileno(), -1);
}

TEST_P(SerialTest, SER_21_aHangUpWithOutputQueuedEndsOnceNamingTheDevice) {
    // SER-21: a device that hangs up while output is queued ends the port once, dropping the output: ConnectionDone if the read saw the end first, ConnectionLost(EIO) if the write failed first; either names the device.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    port->write(pattern(400000));
    reactor().iterate(0.01);
    ASSERT_GT(port->pendingBytes(), 0u);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    pty.closeMaster();
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    for (int i = 0; i < 5; ++i) reactor().iterate(0.005);
    EXPECT_EQ(proto->lost, 1);
    const Failure& why = *proto->lostReason;
    if (auto* lost = why.get<err::ConnectionLost>()) EXPECT_EQ(lost->code().value(), EIO) << why.getErrorMessage();
    else EXPECT_TRUE(why.check<err::ConnectionDone>()) << why.getErrorMessage();
    EXPECT_THAT(why.getErrorMessage(), ::testing::HasSubstr("'" + pty.slave + "'"));
    EXPECT_EQ(faults.calls(Call::close), 1u);
    EXPECT_EQ(port->pendingBytes(), 0u);
}

TEST_P(SerialTest, SER_21_aHangUpReportedWithoutDataNamesTheDevice) {
    // SER-21: a hang-up the reactor reports without data (POLLHUP alone: its plain ConnectionDone, R-37) ends the port with a ConnectionDone naming the device; a loseConnection's ConnectionDone stays as it is.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    port->connectionLost(err::connectionDone());
    EXPECT_EQ(proto->lost, 1);
    EXPECT_TRUE(proto->lostReason->check<err::ConnectionDone>());
    EXPECT_THAT(proto->lostReason->getErrorMessage(), ::testing::HasSubstr("'" + pty.slave + "' hung up"));
    EXPECT_EQ(port->fileno(), -1);

    auto proto2 = std::make_shared<Recorder>();
    auto port2 = open(proto2, pty.slave);
    closePort(port2, proto2);
    EXPECT_EQ(proto2->lostReason->getErrorMessage(), err::connectionDone().getErrorMessage());
}

TEST_P(SerialTest, SER_21_aReadErrorEndsThePortWithConnectionLostCarryingTheErrno) {
    // SER-21: a read that fails (EIO) ends the port with a ConnectionLost (serial::DeviceLost) carrying EIO and naming the device; the descriptor is closed once.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    faults.fail(Call::read, EIO);
    feed(pty, "x");
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    auto* lost = proto->lostReason->get<err::ConnectionLost>();
    ASSERT_NE(lost, nullptr) << proto->lostReason->getErrorMessage();
    EXPECT_TRUE(proto->lostReason->check<serial::DeviceLost>());
    EXPECT_EQ(lost->code().value(), EIO);
    EXPECT_THAT(lost->what(), ::testing::HasSubstr("'" + pty.slave + "'"));
    EXPECT_EQ(faults.calls(Call::close), 1u);
    EXPECT_EQ(proto->received, "");
}

TEST_P(SerialTest, SER_21_aWriteErrorEndsThePortNamingTheDevice) {
    // SER-21: a write that fails (EIO, what a hung-up terminal returns) ends the port with ConnectionLost carrying EIO and naming the device.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    faults.fail(Call::writev, EIO).fail(Call::write, EIO);
    port->write("doomed");
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    auto* lost = proto->lostReason->get<err::ConnectionLost>();
    ASSERT_NE(lost, nullptr) << proto->lostReason->getErrorMessage();
    EXPECT_EQ(lost->code().value(), EIO);
    EXPECT_THAT(lost->what(), ::testing::HasSubstr("'" + pty.slave + "'"));
    EXPECT_EQ(faults.calls(Call::close), 1u);
}

TEST_P(SerialTest, SER_21_aPausedPortStillEndsWhenItsDeviceHangsUp) {
    // SER-21: a port whose reading is paused (a slow consumer) still ends once when the device hangs up: at once from the error event on epoll and poll (errorReason: EIO, naming the device), and at the latest when reading resumes on select, which reports no errors for unwatched descriptors.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    port->pauseProducing();
    pty.closeMaster();
    bool whilePaused = spinUntil([&] { return proto->lost > 0; }, 0.5);
    if (GetParam() != Backend::select) {
        EXPECT_TRUE(whilePaused);
    }
    if (!whilePaused) port->resumeProducing();
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    for (int i = 0; i < 5; ++i) reactor().iterate(0.005);
    EXPECT_EQ(proto->lost, 1);
    EXPECT_THAT(proto->lostReason->getErrorMessage(), ::testing::HasSubstr("'" + pty.slave + "'"));
    EXPECT_EQ(port->fileno(), -1);
}

// ---- SER-22: more settings, exclusive access ------------------------------------------------------

TEST_P(SerialTest, SER_22_settersApplyEachSettingWithTcsadrain) {
    // SER-22 (Better than Twisted): setBytesize, setParity, setStopbits, setXonXoff and setRtsCts each apply SER-5…SER-8 with TCSETSW2 (TCSADRAIN); a bad value throws std::invalid_argument and changes nothing.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    auto port = open(proto, pty.slave);
    ScopedFaults faults;
    faults.onlyFd(port->fileno());
    std::optional<termios2> applied;
    int drains = 0, nows = 0;
    faults.onIoctl([&](int, unsigned long request, void* arg) -> std::optional<int> {
        if (request == TCSETSW2) {
            ++drains;
            applied = *static_cast<termios2*>(arg);
        }
        if (request == TCSETS2) ++nows;
        return std::nullopt;  // the pty stores what it can
    });
    port->setBytesize(7);
    EXPECT_EQ(applied->c_cflag & CSIZE, static_cast<tcflag_t>(CS7));
    port->setParity('O');
    EXPECT_EQ(applied->c_cflag & (PARENB | PARODD | CMSPAR), static_cast<tcflag_t>(PARENB | PARODD));
    EXPECT_EQ(applied->c_cflag & CSIZE, static_cast<tcflag_t>(CS7)) << "earlier settings kept";
    port->setStopbits(2);
    EXPECT_TRUE(applied->c_cflag & CSTOPB);
    port->setXonXoff(true);
    EXPECT_EQ(applied->c_iflag & (IXON | IXOFF), static_cast<tcflag_t>(IXON | IXOFF));
    port->setRtsCts(true);
    EXPECT_TRUE(applied->c_cflag & CRTSCTS);
    EXPECT_EQ(drains, 5);
    EXPECT_EQ(nows, 0);
    termios2 t = readBack(port->fileno());
    EXPECT_TRUE(t.c_cflag & CSTOPB);
    EXPECT_TRUE(t.c_cflag & CRTSCTS);
    EXPECT_EQ(t.c_iflag & (IXON | IXOFF), static_cast<tcflag_t>(IXON | IXOFF));

    EXPECT_THROW(port->setBytesize(4), std::invalid_argument);
    EXPECT_THROW(port->setParity('Z'), std::invalid_argument);
    EXPECT_THROW(port->setStopbits(3), std::invalid_argument);
    EXPECT_EQ(drains, 5) << "a bad value reaches no ioctl";
    const serial::Options& o = port->options();
    EXPECT_EQ(o.bytesize, 7);
    EXPECT_EQ(o.parity, 'O');
    EXPECT_EQ(o.stopbits, 2);
    EXPECT_TRUE(o.xonxoff);
    EXPECT_TRUE(o.rtscts);

    // A device that refuses: the error names it, the recorded settings stay.
    faults.failIoctl(TCSETSW2, EINVAL);
    EXPECT_THROW(port->setBaudRate(300), std::system_error);
    EXPECT_EQ(port->options().baudrate, 9600);
    faults.onIoctl({});
    closePort(port, proto);
}

TEST_P(SerialTest, SER_22_exclusiveAccessByDefaultAndReleasedAtClose) {
    // SER-22 (weft: on by default): the port takes the device with an flock and TIOCEXCL: a second port on it fails with EBUSY naming it before changing anything (root included), another opener without CAP_SYS_ADMIN gets EBUSY from open(); exclusive=false leaves it shared; the close releases it.
    Pty pty;
    auto proto = std::make_shared<Recorder>();
    serial::Options first;
    first.baudrate = 123456;
    auto port = open(proto, pty.slave, first);
    EXPECT_EQ(exclusiveFlag(port->fileno()), 1);
    EXPECT_EQ(openWithoutSysAdmin(pty.slave), EBUSY);
    {
        ScopedFaults faults;
        auto second = std::make_shared<Recorder>();
        try {
            open(second, pty.slave);  // 9600, were it let through
            ADD_FAILURE() << "a second port took the device";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), EBUSY);
            EXPECT_THAT(e.what(), ::testing::HasSubstr("'" + pty.slave + "' is in use"));
        }
        EXPECT_EQ(second->made, 0);
        EXPECT_EQ(faults.calls(Call::close), 1u);
        auto records = faults.history(Call::ioctl);
        EXPECT_FALSE(std::any_of(records.begin(), records.end(), [](const CallRecord& r) {
            return r.request == TCSETS2 || r.request == TCFLSH || r.request == TIOCMBIS;
        })) << "the second opener changed the line";
    }
    EXPECT_EQ(readBack(port->fileno()).c_ospeed, 123456u);
    feed(pty, "mine");
    ASSERT_TRUE(spinUntil([&] { return proto->received == "mine"; }));
    closePort(port, proto);
    EXPECT_EQ(openWithoutSysAdmin(pty.slave), 0) << "still exclusive after the close";

    auto shared = std::make_shared<Recorder>();
    serial::Options o;
    o.exclusive = false;
    auto port2 = open(shared, pty.slave, o);
    EXPECT_EQ(exclusiveFlag(port2->fileno()), 0);
    EXPECT_EQ(openWithoutSysAdmin(pty.slave), 0);
    closePort(port2, shared);
}

// ---- re-entrancy -------------------------------------------------------------------------------

TEST_P(SerialTest, SER_20_closingAbortingOrDroppingFromEveryCallbackEndsOnce) {
    // SER-20 with STYLE §3: loseConnection, abortConnection, or dropping every outside reference to the port from connectionMade, dataReceived, writeConnectionLost, a producer's pause/resume/stop or connectionLost: connectionLost exactly once, never on the stack of the call, and the port is freed.
    enum class Cb { made, data, writeLost, pause, resume, stop, lost };
    enum class Act { lose, abort, drop };
    struct Producer : IPushProducer {
        std::function<void()> onPause, onResume, onStop;
        void pauseProducing() override {
            if (onPause) onPause();
        }
        void resumeProducing() override {
            if (onResume) onResume();
        }
        void stopProducing() override {
            if (onStop) onStop();
        }
    };
    for (Cb cb : {Cb::made, Cb::data, Cb::writeLost, Cb::pause, Cb::resume, Cb::stop, Cb::lost}) {
        for (Act act : {Act::lose, Act::abort, Act::drop}) {
            SCOPED_TRACE(::testing::Message()
                         << "callback " << static_cast<int>(cb) << ", action " << static_cast<int>(act));
            Pty pty;
            auto proto = std::make_shared<Recorder>();
            std::shared_ptr<SerialPort> port;
            std::weak_ptr<SerialPort> weak;
            auto producer = std::make_shared<Producer>();
            int depth = 0;
            bool acted = false;
            auto doAct = [&](Recorder& me) {
                if (acted) return;
                acted = true;
                ++depth;
                auto* stream = dynamic_cast<SerialPort*>(me.transport.get());
                ASSERT_NE(stream, nullptr);
                switch (act) {
                    case Act::lose:
                        stream->unregisterProducer();  // a close waits for a registered producer (FD-13)
                        stream->loseConnection();
                        break;
                    case Act::abort: stream->abortConnection(); break;
                    case Act::drop:
                        stream->unregisterProducer();
                        stream->loseConnection();
                        port.reset();
                        me.transport.reset();
                        break;
                }
                --depth;
            };
            proto->onLost = [&](Recorder& me) {
                EXPECT_EQ(depth, 0) << "connectionLost on the stack of a user call";
                if (cb == Cb::lost) doAct(me);
            };
            if (cb == Cb::made) proto->onMade = [&](Recorder& me) { doAct(me); };
            if (cb == Cb::data) proto->onData = [&](Recorder& me, std::string_view) { doAct(me); };
            if (cb == Cb::writeLost) proto->onWriteLost = [&](Recorder& me) { doAct(me); };
            producer->onPause = [&] {
                if (cb == Cb::pause) doAct(*proto);
            };
            producer->onResume = [&] {
                if (cb == Cb::resume) doAct(*proto);
            };
            producer->onStop = [&] {
                if (cb == Cb::stop) doAct(*proto);
            };
            port = open(proto, pty.slave);
            weak = port;
            switch (cb) {
                case Cb::made: break;
                case Cb::data: feed(pty, "hi"); break;
                case Cb::writeLost:
                    port->write("bye");
                    port->loseWriteConnection();
                    break;
                case Cb::pause:
                case Cb::resume:
                    port->registerProducer(producer, true);
                    port->write(pattern(1 << 20));  // over bufferSize: pauses the producer now
                    spinUntil(
                        [&] {  // drained: resumes it (unless closed first)
                            pty.drain();
                            return acted || proto->lost > 0;
                        },
                        5);
                    break;
                case Cb::stop:
                    port->registerProducer(producer, true);
                    pty.closeMaster();  // connectionLost stops the producer
                    break;
                case Cb::lost: pty.closeMaster(); break;
            }
            if (cb != Cb::stop && cb != Cb::lost) {
                spinUntil([&] { return acted || proto->lost > 0; }, 5);
                if (!acted) {
                    ADD_FAILURE() << "the callback never came";
                    if (port) port->abortConnection();
                }
            }
            ASSERT_TRUE(spinUntil([&] {
                if (pty.master >= 0) pty.drain();  // what a lose flushes goes somewhere
                return proto->lost > 0;
            }));
            for (int i = 0; i < 5; ++i) reactor().iterate(0.002);
            EXPECT_EQ(proto->lost, 1);
            EXPECT_TRUE(acted);
            port.reset();
            proto->transport.reset();
            producer.reset();
            EXPECT_TRUE(weak.expired()) << "the port was not freed";
        }
    }
}

// ---- the "serial:" endpoint ---------------------------------------------------------------------

TEST_P(SerialTest, Endpoint_aDescriptionOpensTheDeviceWithItsSettings) {
    // serial:DEVICE with every keyword builds a SerialClientEndpoint; connect() opens the device so configured and fires with the protocol after connectionMade.
    Pty pty;
    auto endpoint = endpoints::clientFromString(reactor(), "serial:" + quoteStringArgument(pty.slave) +
                                                               ":baudrate=123456:bytesize=8:parity=n:stopbits=2"
                                                               ":xonxoff=1:rtscts=true:exclusive=0");
    auto* serialEndpoint = dynamic_cast<endpoints::SerialClientEndpoint*>(endpoint.get());
    ASSERT_NE(serialEndpoint, nullptr);
    EXPECT_EQ(serialEndpoint->device(), pty.slave);
    const serial::Options& o = serialEndpoint->options();
    EXPECT_EQ(o.baudrate, 123456);
    EXPECT_EQ(o.bytesize, 8);
    EXPECT_EQ(o.parity, 'N');
    EXPECT_EQ(o.stopbits, 2);
    EXPECT_TRUE(o.xonxoff);
    EXPECT_TRUE(o.rtscts);
    EXPECT_FALSE(o.exclusive);
    auto factory = Factory::forProtocol<Recorder>();
    auto proto = std::dynamic_pointer_cast<Recorder>(weft::testing::successResultOf(endpoint->connect(factory)));
    ASSERT_TRUE(proto);
    EXPECT_EQ(proto->made, 1);
    auto* port = dynamic_cast<SerialPort*>(proto->transport.get());
    ASSERT_NE(port, nullptr);
    termios2 t = readBack(port->fileno());
    EXPECT_EQ(t.c_ospeed, 123456u);
    EXPECT_TRUE(t.c_cflag & CSTOPB);
    EXPECT_TRUE(t.c_cflag & CRTSCTS);
    EXPECT_EQ(exclusiveFlag(port->fileno()), 0);
    feed(pty, "through the endpoint");
    ASSERT_TRUE(spinUntil([&] { return proto->received == "through the endpoint"; }));
    port->loseConnection();
    ASSERT_TRUE(spinUntil([&] { return proto->lost > 0; }));
    proto->transport.reset();

    // device= and the defaults.
    auto byKeyword = std::dynamic_pointer_cast<endpoints::SerialClientEndpoint>(
        endpoints::clientFromString(reactor(), "SERIAL:device=/dev/ttyUSB0"));
    ASSERT_TRUE(byKeyword);
    EXPECT_EQ(byKeyword->device(), "/dev/ttyUSB0");
    EXPECT_EQ(byKeyword->options().baudrate, 9600);
    EXPECT_TRUE(byKeyword->options().exclusive);
}

TEST_P(SerialTest, Endpoint_badValuesAreRejectedAtParseTimeNamingThem) {
    // Each bad keyword value throws InvalidEndpointDescription naming the keyword and the value; argument mistakes throw EndpointArgumentError; nothing is opened.
    ScopedFaults faults;
    const std::pair<const char*, const char*> badValues[] = {
        {"serial:/dev/ttyS9:baudrate=fast", "baudrate"},  {"serial:/dev/ttyS9:baudrate=0", "baudrate"},
        {"serial:/dev/ttyS9:baudrate=-9600", "baudrate"}, {"serial:/dev/ttyS9:baudrate=99999999999", "baudrate"},
        {"serial:/dev/ttyS9:bytesize=9", "bytesize"},     {"serial:/dev/ttyS9:bytesize=", "bytesize"},
        {"serial:/dev/ttyS9:parity=X", "parity"},         {"serial:/dev/ttyS9:stopbits=3", "stopbits"},
        {"serial:/dev/ttyS9:stopbits=1.0", "stopbits"},   {"serial:/dev/ttyS9:xonxoff=maybe", "xonxoff"},
        {"serial:/dev/ttyS9:rtscts=2", "rtscts"},         {"serial:/dev/ttyS9:exclusive=yes please", "exclusive"},
    };
    for (auto [description, keyword] : badValues) {
        SCOPED_TRACE(description);
        try {
            endpoints::clientFromString(reactor(), description);
            ADD_FAILURE() << "accepted";
        } catch (const InvalidEndpointDescription& e) {
            std::string value = std::string(description).substr(std::string(description).rfind('=') + 1);
            EXPECT_THAT(e.what(), ::testing::HasSubstr(keyword));
            EXPECT_THAT(e.what(), ::testing::HasSubstr("'" + value + "'"));
        }
    }
    for (const char* description : {"serial", "serial:", "serial:device=", "serial:/dev/a:/dev/b",
                                    "serial:/dev/a:device=/dev/b", "serial:/dev/a:speed=9600"}) {
        SCOPED_TRACE(description);
        EXPECT_THROW(endpoints::clientFromString(reactor(), description), EndpointArgumentError);
    }
    // A reactor that is not a weft::Reactor: the arguments are checked first.
    weft::testing::MemoryReactor memory;
    EXPECT_THROW(endpoints::clientFromString(memory, "serial:/dev/ttyS9:parity=X"), InvalidEndpointDescription);
    EXPECT_THROW(endpoints::clientFromString(memory, "serial:/dev/ttyS9"), UnsupportedEndpointType);
    EXPECT_EQ(faults.calls(Call::open), 0u);
}

TEST_P(SerialTest, Endpoint_aConnectThatCannotOpenFailsTheDeferredAndLeavesNothing) {
    // connect() to a missing device or a non-terminal fails its Deferred with create()'s error; the protocol built is never connected, nothing stays open.
    for (std::string device : {std::string("/nonexistent/ttyACM7"), std::string("/dev/null")}) {
        SCOPED_TRACE(device);
        auto endpoint = endpoints::clientFromString(reactor(), "serial:" + device);
        auto factory = std::make_shared<Factory>();
        std::shared_ptr<Recorder> built;
        factory->protocol = [&] {
            built = std::make_shared<Recorder>();
            return std::static_pointer_cast<Protocol>(built);
        };
        auto failure = weft::testing::failureResultOf(endpoint->connect(factory));
        auto* e = failure.get<std::system_error>();
        ASSERT_NE(e, nullptr) << failure.getErrorMessage();
        EXPECT_EQ(e->code().value(), device == "/dev/null" ? ENOTTY : ENOENT);
        EXPECT_THAT(e->what(), ::testing::HasSubstr(device));
        ASSERT_TRUE(built);
        EXPECT_EQ(built->made, 0);
    }
}

}  // namespace
