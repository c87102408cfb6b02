// Test support for child processes: a ProcessProtocol that records every
// call, the helper child's path, and small checks (/proc zombies, the
// helper's byte pattern).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <weft/internet/process.hpp>

#include "support/udphelpers.hpp"  // TempDir

namespace weft::test {

/// tests/helpers/weft_child.cpp, built next to the tests.
std::string childHelper();

/// Children of this process that are zombies now (/proc/<pid>/stat).
int zombieChildren();

/// The bytes weft_child's `write FD COUNT` writes, from absolute offset `offset`.
std::string patternBytes(std::size_t offset, std::size_t count);
/// weft_child's `fdread` hash: FNV-1a 64, 16 lowercase hex digits.
std::string fnv1a(const std::string& data);

/// Records every ProcessProtocol call, in order.
class RecordingProcess : public ProcessProtocol {
public:
    std::vector<std::string> events;  // "made", "lost N", "exited", "ended"
    std::map<int, std::string> data;
    bool made = false, exited = false, ended = false, dataAfterLoss = false;
    std::optional<pid_t> pidAtMade, pidAtExited;
    int statusAtMade = 0;
    std::optional<Failure> exitedReason, endedReason;
    /// Callbacks that throw std::runtime_error: "made", "data", "lost", "exited".
    std::set<std::string> throwIn;
    std::function<void(RecordingProcess&)> onEnded;
    std::function<void(RecordingProcess&, int, const std::string&)> onData;

    std::string out() const { return get(1); }
    std::string err() const { return get(2); }
    std::string get(int fd) const {
        auto it = data.find(fd);
        return it == data.end() ? std::string() : it->second;
    }
    std::multiset<int> lostFds() const { return lost_; }
    /// The exit code / signal from the end reason (-1 when the other one applies).
    int exitCode() const;
    int signal() const;

    void connectionMade() override;
    void childDataReceived(int fd, Bytes bytes) override;
    void childConnectionLost(int fd) override;
    void processExited(const Failure& reason) override;
    void processEnded(const Failure& reason) override;

private:
    std::multiset<int> lost_;
};

}  // namespace weft::test
