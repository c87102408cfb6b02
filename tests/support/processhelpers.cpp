#include "support/processhelpers.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <weft/internet/error.hpp>

namespace weft::test {

std::string childHelper() { return std::string(WEFT_TEST_HELPER_DIR) + "/weft_child"; }

int zombieChildren() {
    int count = 0;
    pid_t self = ::getpid();
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        long ppid = 0;
        rest >> state >> ppid;
        if (ppid == self && state == 'Z') ++count;
    }
    return count;
}

std::string patternBytes(std::size_t offset, std::size_t count) {
    std::string out(count, '\0');
    for (std::size_t i = 0; i < count; ++i) {
        std::uint64_t at = offset + i;
        out[i] = static_cast<char>(static_cast<unsigned char>((at * 2654435761ULL) >> 13));
    }
    return out;
}

std::string fnv1a(const std::string& data) {
    std::uint64_t h = 14695981039346656037ULL;
    for (unsigned char c : data) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

int RecordingProcess::exitCode() const {
    if (!endedReason) return -1;
    if (endedReason->check<error::ProcessDone>()) return 0;
    if (const auto* t = endedReason->get<error::ProcessTerminated>()) return t->exitCode.value_or(-1);
    return -1;
}

int RecordingProcess::signal() const {
    if (!endedReason) return -1;
    if (const auto* t = endedReason->get<error::ProcessTerminated>()) return t->signal.value_or(-1);
    return -1;
}

void RecordingProcess::connectionMade() {
    made = true;
    events.emplace_back("made");
    pidAtMade = processTransport->pid();
    statusAtMade = processTransport->status();
    if (throwIn.count("made")) throw std::runtime_error("connectionMade fails");
}

void RecordingProcess::childDataReceived(int fd, Bytes bytes) {
    if (lost_.count(fd)) dataAfterLoss = true;
    std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    data[fd] += text;
    if (onData) onData(*this, fd, text);
    if (throwIn.count("data")) throw std::runtime_error("childDataReceived fails");
}

void RecordingProcess::childConnectionLost(int fd) {
    lost_.insert(fd);
    events.push_back("lost " + std::to_string(fd));
    if (throwIn.count("lost")) throw std::runtime_error("childConnectionLost fails");
}

void RecordingProcess::processExited(const Failure& reason) {
    exited = true;
    exitedReason = reason;
    pidAtExited = processTransport->pid();
    events.emplace_back("exited");
    if (throwIn.count("exited")) throw std::runtime_error("processExited fails");
}

void RecordingProcess::processEnded(const Failure& reason) {
    ended = true;
    endedReason = reason;
    events.emplace_back("ended");
    if (onEnded) onEnded(*this);
}

}  // namespace weft::test
