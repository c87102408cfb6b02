// The untyped engine of weft::Deferred (spec: defer.md). The typed handles in
// <weft/internet/defer/deferred.hpp> only build steps; everything that walks a
// chain is here.
#include <weft/internet/defer.hpp>

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <utility>

#include <fmt/format.h>

#include <weft/log.hpp>

namespace weft {

namespace {
std::atomic<bool> gDebugging{false};

std::string describeFailures(const std::vector<Failure>& fs) {
    std::string out = "FailureGroup([";
    for (std::size_t i = 0; i < fs.size(); ++i) {
        if (i) out += ", ";
        out += fs[i].repr();
    }
    return out + "])";
}
}  // namespace

void setDebugging(bool on) noexcept { gDebugging.store(on, std::memory_order_relaxed); }
bool getDebugging() noexcept { return gDebugging.load(std::memory_order_relaxed); }

Failure logError(Failure f) {
    log::emit(log::Level::critical, "", "Logged error:", &f);
    return f;
}

namespace defer {

AlreadyCalledError::AlreadyCalledError(const std::string& debugInfo)
    : std::logic_error(debugInfo.empty() ? std::string("Deferred has already been called")
                                         : "Deferred has already been called\n" + debugInfo) {}

CancelledError::CancelledError() : std::runtime_error("Deferred was cancelled") {}

TimeoutError::TimeoutError(double timeout)
    : std::runtime_error(fmt::format("Deferred timed out after {} seconds", timeout)), timeout_(timeout) {}

FirstError::FirstError(Failure subFailure, std::size_t index)
    : std::runtime_error(fmt::format("FirstError[#{}, {}]", index, subFailure.str())),
      subFailure_(std::move(subFailure)), index_(index) {}

FailureGroup::FailureGroup(std::vector<Failure> failures)
    : std::runtime_error(describeFailures(failures)), failures_(std::move(failures)) {}

QueueOverflow::QueueOverflow() : std::runtime_error("DeferredQueue is full") {}
QueueUnderflow::QueueUnderflow() : std::runtime_error("DeferredQueue has too many pending get()s") {}

}  // namespace defer

namespace detail {

std::string Slot::describe() const {
    if (failure_) return failure_->repr();
    if (box_) return box_->describe();
    return "None";
}

void Slot::throwWrongType(const std::type_info& wanted) const {
    throw std::logic_error(fmt::format("weft::Deferred: expected a result of type {}, found {}",
                                       demangle(wanted.name()),
                                       box_ ? demangle(box_->type().name()) : std::string("nothing")));
}

namespace {
std::string formatLocation(const char* prefix, const char* title, const SourceLocation& l) {
    return fmt::format("{0} {1}:\n{0}  File \"{2}\", line {3}, in {4}\n", prefix, title, l.file, l.line, l.function);
}
}  // namespace

std::string DebugInfo::text() const {
    std::string out;
    if (creator) out += formatLocation(" C:", "Deferred was created", *creator);
    if (invoker) out += formatLocation(" I:", "First Invoker was", *invoker);
    return out;
}

Core::Core(const std::type_info& created, const SourceLocation& loc) : createdType_(&created), outType_(&created) {
    if (getDebugging()) {
        debug_ = std::make_unique<DebugInfo>();
        debug_->creator = loc;
    }
}

Core::~Core() {
    if (result.isFailure() && !(consumed && result.failure().value() == consumed)) {
        // DEF-25: one event carrying the Failure, at the last release.
        std::string msg = "Unhandled error in Deferred:";
        if (debug_) {
            // One line, as every log record is: the debug text's lines joined.
            std::string info = debug_->text();
            std::replace(info.begin(), info.end(), '\n', ' ');
            while (!info.empty() && info.back() == ' ') info.pop_back();
            if (!info.empty()) msg += " (debug:" + info + ")";
        }
        log::emit(log::Level::critical, "", msg, &result.failure());
    }
    // Steps may own other Deferreds (a hand-off owns the waiting outer, a
    // suspended frame its coroutine's Deferred), whose steps own more: destroy
    // them from one loop so dropping a long unfired chain cannot overflow the stack.
    thread_local std::vector<std::deque<Step>>* pending = nullptr;
    if (steps_.empty()) return;
    if (pending) {
        pending->push_back(std::move(steps_));
        return;
    }
    std::vector<std::deque<Step>> queue;
    pending = &queue;
    queue.push_back(std::move(steps_));
    while (!queue.empty()) {
        std::deque<Step> steps = std::move(queue.back());
        queue.pop_back();
        steps.clear();
    }
    pending = nullptr;
}

std::string Core::debugText() const {
    if (!getDebugging() || !debug_) return {};
    return debug_->text();
}

void Core::checkOutput(const std::type_info& t) const {
    if (*outType_ != t)
        throw std::logic_error(
            fmt::format("weft::Deferred: stale handle: the chain's current result type is {}, the handle's is {}",
                        demangle(outType_->name()), demangle(t.name())));
}

void Core::checkCreated(const std::type_info& t) const {
    if (*createdType_ != t)
        throw std::logic_error(fmt::format("weft::Deferred: callback() needs a handle of the created type {}, not {}",
                                           demangle(createdType_->name()), demangle(t.name())));
}

std::string Core::repr() const {
    if (auto other = chainedTo_.lock())
        return fmt::format("<Deferred at {} waiting on Deferred at {}>", fmt::ptr(this), fmt::ptr(other.get()));
    if (!called_ || waiting_) return fmt::format("<Deferred at {}>", fmt::ptr(this));
    return fmt::format("<Deferred at {} current result: {}>", fmt::ptr(this), result.describe());
}

void Core::markFired(const SourceLocation& loc) {
    called_ = true;
    if (getDebugging()) {
        if (!debug_) debug_ = std::make_unique<DebugInfo>();
        debug_->invoker = loc;
    }
    // DEF-21: a canceller that refers back to this Deferred must not keep it alive.
    canceller = nullptr;
    cancelOverride = nullptr;
    chainedTo_.reset();
}

void Core::fire(Slot s, const SourceLocation& loc) {
    if (called_) {
        if (suppressAlreadyCalled_) {  // DEF-20: the late producer of a cancelled Deferred
            suppressAlreadyCalled_ = false;
            return;
        }
        throw defer::AlreadyCalledError(debugText());
    }
    markFired(loc);
    result = std::move(s);
    runCallbacks();
}

void Core::fireWaiting(CorePtr x) {
    if (called_) throw defer::AlreadyCalledError(debugText());
    markFired(SourceLocation{"<coroutine>", 0, "co_return"});
    if (!absorb(StepOut{Slot{}, std::move(x)})) runCallbacks();
}

Slot Core::take() {
    Slot out = std::move(result);
    result = Slot{};
    outType_ = &typeid(void);
    return out;
}

void Core::inheritConsumed(const Core& from) noexcept {
    if (from.consumed && result.isFailure() && result.failure().value() == from.consumed) consumed = from.consumed;
}

void Core::addStep(Step s) {
    steps_.push_back(std::move(s));
    if (called_ && paused_ == 0 && !waiting_) runCallbacks();
}

void Core::unpause() {
    if (paused_ == 0) throw std::logic_error("weft::Deferred::unpause() without a matching pause()");
    if (--paused_ == 0 && called_ && !waiting_) runCallbacks();
}

namespace {
// Cancelling and firing nest: a canceller cancels other Deferreds (a
// DeferredList cancels its members, which may be lists), a callback fires
// another Deferred (a list fires when its last member does, and may itself be
// a member). Up to kMaxNesting deep the nested call runs at once, on the
// caller's stack; deeper ones wait in the outermost call's queue, which runs
// them in order before it returns, so no nesting overflows the stack.
constexpr int kMaxNesting = 64;

struct Nesting {
    int depth = 0;
    std::vector<CorePtr>* queue = nullptr;  // the outermost call's, while one runs
};
thread_local Nesting tCancels, tPasses;

// Runs run(core) under `n`'s limit. The first error any of the queued ones
// raised leaves the outermost call once all have run.
template <class Run>
void runNested(Nesting& n, Core& core, const Run& run) {
    if (n.depth >= kMaxNesting && n.queue) {
        n.queue->push_back(core.shared_from_this());
        return;
    }
    std::vector<CorePtr> queue;  // allocates only if something waits
    const bool outermost = n.queue == nullptr;
    if (outermost) n.queue = &queue;
    struct Guard {
        Nesting& n;
        bool outermost;
        ~Guard() {
            --n.depth;
            if (outermost) n.queue = nullptr;
        }
    } guard{n, outermost};
    ++n.depth;
    std::exception_ptr first;
    try {
        run(core);
    } catch (...) {
        if (!outermost) throw;
        first = std::current_exception();
    }
    if (!outermost) return;
    for (std::size_t i = 0; i < queue.size(); ++i) {  // in order; running one may queue more
        CorePtr next = std::move(queue[i]);
        --n.depth;  // the queued ones start again from the top
        try {
            runNested(n, *next, run);
        } catch (...) {
            if (!first) first = std::current_exception();
        }
        ++n.depth;
    }
    if (first) std::rethrow_exception(first);
}
}  // namespace

void Core::cancel(const SourceLocation& loc) {
    runNested(tCancels, *this, [&loc](Core& c) { c.cancelOne(loc); });
}

void Core::cancelOne(const SourceLocation& loc) {
    // What this Deferred waits on is cancelled in its place: a coroutine's
    // awaited Deferred (DEF-50), the Deferred a callback returned (DEF-19).
    // A loop, not a call, so any depth of either costs no stack.
    CorePtr cur = shared_from_this();
    // A chain that leads back into itself (a coroutine awaiting its own Deferred)
    // has nothing to cancel at its end: stop there, as Twisted's cancel returns
    // with nothing fired, instead of going round for ever (Brent's cycle check).
    CorePtr mark = cur;
    for (std::size_t steps = 0, power = 1;; ++steps) {
        if (steps == power) {
            mark = cur;
            power *= 2;
            steps = 0;
        } else if (steps != 0 && cur == mark) {
            return;
        }
        Core& c = *cur;
        if (c.called_) {
            if (!c.waiting_) return;
            CorePtr x = c.waitingOn_.lock();
            if (!x) return;
            cur = std::move(x);
            continue;
        }
        if (c.coroutine) {  // the body decides the outcome
            CorePtr target = c.coroutine->awaiting.lock();
            if (!target) return;
            cur = std::move(target);
            continue;
        }
        if (c.cancelOverride) {
            auto hook = std::move(c.cancelOverride);
            hook(c);
            if (!c.called_ && !c.cancelOverride) c.cancelOverride = std::move(hook);
            return;
        }
        // Moved out first: firing from inside it (which releases the canceller)
        // must not destroy it mid-call.
        auto fn = std::move(c.canceller);
        if (fn) {
            try {
                fn(c);
            } catch (...) {
                // DEF-21: the error reaches the caller. The canceller stays, as
                // Twisted's does: a later cancel() runs it again, and the
                // producer's own callback() still counts (DEF-20).
                if (!c.called_ && !c.canceller) c.canceller = std::move(fn);
                throw;
            }
        } else {
            c.suppressAlreadyCalled_ = true;
        }
        if (!c.called_) c.fire(Slot::failed(Failure(defer::CancelledError())), loc);
        return;
    }
}

bool Core::absorb(StepOut&& out) {
    if (!out.wait) {
        result = std::move(out.slot);
        return false;
    }
    Core& x = *out.wait;
    if (&x == this) {
        // DEF-15, better than Twisted: a step that returned its own Deferred.
        result = Slot::failed(Failure(
            std::logic_error("Callback returned the Deferred it was attached to; this breaks the callback chain")));
        return false;
    }
    if (x.ready()) {  // DEF-12: take it now; x is left empty and never reports it
        result = x.take();
        inheritConsumed(x);
        return false;
    }
    // The step took this result (a Failure an errback handled, perhaps moved from):
    // while waiting, the result is x's to give, and nothing here is left to report.
    result = Slot();
    waiting_ = true;
    waitingOn_ = out.wait;
    chainedTo_ = out.wait;
    x.outType_ = &typeid(void);
    Step s;
    s.kind = StepKind::handOff;
    s.other = shared_from_this();
    x.steps_.push_back(std::move(s));
    return true;
}

// Twisted's _runCallbacks: one loop runs this Deferred and every Deferred a
// hand-off or chainDeferred link continues into, so neither implicit (DEF-14)
// nor explicit (DEF-17) chains grow the C++ stack.
void Core::runCallbacks() {
    if (running_) return;  // DEF-7: the pass already under way picks up new steps
    runNested(tPasses, *this, [](Core& c) {
        if (!c.running_) c.runChain();
    });
}

void Core::runChain() {
    std::vector<CorePtr> chain;
    chain.push_back(shared_from_this());
    while (!chain.empty()) {
        Core& cur = *chain.back();
        if (cur.paused_ > 0 || cur.waiting_ || cur.running_) {
            chain.pop_back();
            continue;
        }
        bool finished = true;
        cur.chainedTo_.reset();
        while (!cur.steps_.empty()) {
            Step step = std::move(cur.steps_.front());
            cur.steps_.pop_front();
            if (step.kind == StepKind::handOff) {
                Core& outer = *step.other;
                outer.result = std::move(cur.result);
                cur.result = Slot{};
                outer.inheritConsumed(cur);
                outer.waiting_ = false;
                outer.waitingOn_.reset();
                chain.push_back(std::move(step.other));
                finished = false;
                break;
            }
            if (step.kind == StepKind::fire) {
                Core& d2 = *step.other;
                if (d2.called_) {
                    if (d2.suppressAlreadyCalled_) {
                        d2.suppressAlreadyCalled_ = false;
                        cur.result = Slot{};
                    } else {
                        cur.result = Slot::failed(Failure(defer::AlreadyCalledError(d2.debugText())));
                    }
                    continue;
                }
                d2.markFired(SourceLocation{"<chainDeferred>", 0, "chainDeferred"});
                d2.result = std::move(cur.result);
                cur.result = Slot{};
                d2.inheritConsumed(cur);
                chain.push_back(std::move(step.other));
                finished = false;
                break;
            }
            StepFn& fn = (step.kind == StepKind::both || !cur.result.isFailure()) ? step.cb : step.eb;
            if (!fn) continue;  // the missing half of a pair passes the result through
            StepOut out;
            cur.running_ = true;
            try {
                out = fn(cur, cur.result);
            } catch (...) {
                out = StepOut{Slot::failed(Failure::current()), nullptr};
            }
            cur.running_ = false;
            step = Step{};  // DEF-6: the callable and its captures die now
            if (cur.absorb(std::move(out))) break;
            if (cur.paused_ > 0) break;  // DEF-10: a pause from inside a step stops the pass
        }
        if (finished) chain.pop_back();
    }
}

// ---- coroutines handing over to the next -----------------------------------------------

namespace {
struct Handover {
    Core* core;                    // the Deferred a finishing coroutine fires
    std::coroutine_handle<> next;  // the frame its last step handed over
};
struct HandoverState {
    Handover* firing = nullptr;        // the innermost finishCoroutine's firing
    void* looped = nullptr;            // the frame a loop below is resuming now
    std::coroutine_handle<> passed{};  // what that frame, finishing, passed back to the loop
};
constinit thread_local HandoverState tHandover{};
}  // namespace

void Core::resumeAwaiting(std::coroutine_handle<> frame) {
    Handover* firing = tHandover.firing;
    // Only the last step of the very Deferred being fired: resuming later must
    // not put the frame behind any other step of it.
    if (firing && firing->core == this && !firing->next && steps_.empty()) {
        firing->next = frame;
        return;
    }
    frame.resume();
}

void finishCoroutine(void* frame, CorePtr core, CorePtr returned, Slot s) noexcept {
    // Resumed by the loop below a moment ago, and finishing without anything
    // between: pass the next frame back to that loop. (Cleared at once: the
    // address is free again, and a coroutine made while firing may get it.)
    const bool looped = frame != nullptr && tHandover.looped == frame;
    if (looped) tHandover.looped = nullptr;
    Handover mine{core.get(), {}};
    Handover* outer = std::exchange(tHandover.firing, &mine);
    try {
        if (returned) {
            core->fireWaiting(std::move(returned));
        } else {
            core->fire(std::move(s), SourceLocation{"<coroutine>", 0, "co_return"});
        }
    } catch (...) {
        // Someone fired the coroutine's Deferred from outside; its result stands.
        Failure f = Failure::current();
        log::failure("", "Coroutine finished after its Deferred was fired:", f);
    }
    tHandover.firing = outer;
    core.reset();
    std::coroutine_handle<> next = mine.next;
    if (!next) return;
    if (looped) {
        tHandover.passed = next;
        return;
    }
    while (next) {  // weft frames: resume() does not throw (unhandled_exception keeps the failure)
        void* outerLooped = std::exchange(tHandover.looped, next.address());
        std::coroutine_handle<> outerPassed = std::exchange(tHandover.passed, {});
        next.resume();
        next = std::exchange(tHandover.passed, outerPassed);
        tHandover.looped = outerLooped;
    }
}

}  // namespace detail
}  // namespace weft
