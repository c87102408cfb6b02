// A line-based chat server on weft: each client picks a name with its first
// line, and every later line goes to everyone else as "<name>: <line>". Lines
// arrive as std::string_view (weft::basic::LineReceiver); a line over
// MAX_LENGTH closes that client's connection.
//
//   ./chat_server tcp:8000:interface=127.0.0.1     then, twice: nc 127.0.0.1 8000
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <weft/internet/base.hpp>
#include <weft/internet/endpoints.hpp>
#include <weft/protocols/basic.hpp>

namespace {

class Chat;

// The room: the factory every client's protocol shares.
class Room final : public weft::Factory {
public:
    std::set<Chat*> members;
};

class Chat final : public weft::basic::LineReceiver {
public:
    Chat() {
        delimiter = "\n";
        MAX_LENGTH = 1024;
    }
    void connectionMade() override { sendLine("Your name?"); }
    void lineReceived(std::string_view line) override {
        if (line.ends_with('\r')) line.remove_suffix(1);  // telnet and friends send "\r\n"
        if (name_.empty()) {
            if (line.empty()) return sendLine("Your name?");
            name_ = line;
            room().members.insert(this);
            return broadcast(name_ + " joined");
        }
        broadcast(name_ + ": " + std::string(line));
    }
    void connectionLost(const weft::Failure&) override {
        if (room().members.erase(this)) broadcast(name_ + " left");
    }

private:
    Room& room() { return static_cast<Room&>(*factory); }
    void broadcast(const std::string& text) {
        for (Chat* member : room().members)
            if (member != this) member->sendLine(text);
    }
    std::string name_;
};

}  // namespace

int main(int argc, char** argv) {
    const char* description = argc > 1 ? argv[1] : "tcp:8000:interface=127.0.0.1";
    auto reactor = weft::Reactor::create();
    int status = 0;
    weft::endpoints::serverFromString(*reactor, description)
        ->listen(weft::Factory::forProtocol<Chat, Room>())
        .addBoth([&](weft::Result<std::shared_ptr<weft::IListeningPort>> r) {
            if (r.ok()) {
                std::printf("chat on %s\n", weft::addressStr(r.value()->getHost()).c_str());
            } else {
                std::fprintf(stderr, "cannot listen: %s\n", r.failure().getErrorMessage().c_str());
                status = 1;
            }
        });
    if (status == 0) reactor->run();
    return status;
}
