// weft/internet/defer/list.hpp — DeferredList, gatherResults and race
// (spec: defer.md DEF-38 … DEF-44). Include <weft/internet/defer.hpp>.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include <weft/internet/defer/deferred.hpp>
#include <weft/log.hpp>

namespace weft {

/// Flags of a DeferredList (Twisted's keyword arguments).
struct DeferredListOptions {
    /// Errback with defer::FirstError(failure, index) at the first member Failure.
    bool fireOnOneErrback = false;
    /// Member Failures recorded by the list are never reported as unhandled
    /// (DEF-40); they stay on the member's error path for later errbacks.
    bool consumeErrors = false;
};

namespace detail {

/// Cancels each still-existing member once, in order; a throwing canceller is
/// logged and the others are still cancelled (DEF-41).
inline void cancelMembers(const std::vector<std::weak_ptr<Core>>& members) {
    for (const auto& w : members) {
        if (auto m = w.lock()) {
            try {
                m->cancel();
            } catch (...) {
                log::failure("", "Exception while cancelling a DeferredList member:", Failure::current());
            }
        }
    }
}

template <class T>
std::vector<std::weak_ptr<Core>> weakMembers(const std::vector<Deferred<T>>& ds) {
    std::vector<std::weak_ptr<Core>> out;
    out.reserve(ds.size());
    for (const auto& d : ds) out.push_back(d.detailCore());
    return out;
}

/// Shared state of one list: owned by the members' steps, so the list lives as
/// long as a member can still report to it, and owns no member (DEF-27).
template <class T, class R, bool FirstCallback>
struct ListState {
    explicit ListState(Deferred<R> d) : list(std::move(d)) {}
    Deferred<R> list;
    std::vector<std::optional<Result<T>>> entries;
    std::size_t finished = 0;
    DeferredListOptions options;

    void record(Core& member, Slot& in, std::size_t index) {
        const bool ok = !in.isFailure();
        ++finished;
        if (!list.called()) {
            if constexpr (FirstCallback) {
                if (ok) {
                    list.callback(R(in.ref<T>(), index));
                } else if (options.fireOnOneErrback) {
                    list.errback(defer::FirstError(in.failure(), index));
                } else {
                    entries[index].emplace(Result<T>::failed(in.failure()));
                    if (finished == entries.size()) {  // every member failed (DEF-39, better than Twisted)
                        std::vector<Failure> fs;
                        for (auto& e : entries) fs.push_back(e->failure());
                        list.errback(defer::FailureGroup(std::move(fs)));
                    }
                }
            } else {
                if (!ok && options.fireOnOneErrback) {
                    list.errback(defer::FirstError(in.failure(), index));
                } else {
                    if (ok) {
                        if constexpr (std::is_void_v<T>) {
                            entries[index].emplace();
                        } else {
                            entries[index].emplace(in.ref<T>());
                        }
                    } else {
                        entries[index].emplace(Result<T>::failed(in.failure()));
                    }
                    if (finished == entries.size()) {
                        R all;
                        all.reserve(entries.size());
                        for (auto& e : entries) all.push_back(std::move(*e));
                        entries.clear();
                        list.callback(std::move(all));
                    }
                }
            }
        }
        if (!ok && options.consumeErrors) member.consumed = in.failure().value();
    }
};

template <class T, class R, bool FirstCallback>
Deferred<R> buildList(std::vector<Deferred<T>> ds, DeferredListOptions options, Deferred<R> list) {
    list.detailCore()->cancelOverride = [members = weakMembers(ds)](Core&) { cancelMembers(members); };
    auto state = std::make_shared<ListState<T, R, FirstCallback>>(list);
    state->entries.resize(ds.size());
    state->options = options;
    if constexpr (!FirstCallback) {
        if (ds.empty()) list.callback(R{});
    }
    for (std::size_t i = 0; i < ds.size(); ++i) {
        Core& member = *ds[i].detailCore();
        member.checkOutput(typeid(T));
        Step s;
        s.kind = StepKind::both;
        s.cb = [state, i](Core& m, Slot& in) {
            state->record(m, in, i);
            return StepOut{std::move(in), nullptr};  // the member's result passes on unchanged
        };
        member.addStep(std::move(s));
    }
    return list;
}

}  // namespace detail

/// Waits for a list of Deferreds (Twisted DeferredList; DEF-38 … DEF-41). Is
/// itself a Deferred firing with one Result<T> per member, in input order, once
/// every member has a result (at once for no members). The constructor copies
/// the sequence and appends one step to each member; members with results are
/// handled on the spot, so the list may fire before the constructor returns.
/// Each member's result passes on unchanged to its later steps (T must be
/// copyable). The list is kept alive by its members and does not own them.
/// cancel() on an unfired list cancels every member it was built from.
template <class T>
class DeferredList : public Deferred<std::vector<Result<T>>> {
public:
    using Entries = std::vector<Result<T>>;

    /// Builds the list; see the class comment and DeferredListOptions.
    explicit DeferredList(std::vector<Deferred<T>> ds, DeferredListOptions options = {},
                          SourceLocation loc = SourceLocation::current())
        : Deferred<Entries>(detail::buildList<T, Entries, false>(std::move(ds), options, Deferred<Entries>(loc))) {}

    /// Twisted's fireOnOneCallback=True form (DEF-39): fires with (value, index)
    /// of the first member to succeed; never fires for no members; errbacks with
    /// defer::FailureGroup (Failures in input order) when every member fails, or
    /// with defer::FirstError at the first Failure under fireOnOneErrback.
    template <class V = T>
    requires(!std::is_void_v<V>) static Deferred<std::pair<V, std::size_t>> fireOnOneCallback(
        std::vector<Deferred<V>> ds, DeferredListOptions options = {}, SourceLocation loc = SourceLocation::current()) {
        using R = std::pair<V, std::size_t>;
        return detail::buildList<V, R, true>(std::move(ds), options, Deferred<R>(loc));
    }
};

/// All members' values in input order once all have succeeded (at once for no
/// members); at the first Failure, errbacks with defer::FirstError(failure,
/// index) (DEF-42). cancel() cancels every member. For void members the result
/// is a Deferred<void>.
template <class T>
auto gatherResults(std::vector<Deferred<T>> ds, bool consumeErrors = false,
                   SourceLocation loc = SourceLocation::current()) {
    DeferredListOptions options;
    options.fireOnOneErrback = true;
    options.consumeErrors = consumeErrors;
    DeferredList<T> list(std::move(ds), options, loc);
    if constexpr (std::is_void_v<T>) {
        return list.addCallback([](std::vector<Result<void>>) {});
    } else {
        return list.addCallback([](std::vector<Result<T>> rs) {
            std::vector<T> out;
            out.reserve(rs.size());
            for (auto& r : rs) out.push_back(std::move(r).value());
            return out;
        });
    }
}

namespace detail {
template <class... A>
struct GatherState {
    explicit GatherState(Deferred<std::tuple<A...>> d) : out(std::move(d)) {}
    Deferred<std::tuple<A...>> out;
    std::tuple<std::optional<A>...> values;
    std::size_t finished = 0;

    template <std::size_t I>
    void record(Slot& in) {
        if (out.called()) return;
        if (in.isFailure()) {
            out.errback(defer::FirstError(in.failure(), I));
            return;
        }
        std::get<I>(values).emplace(in.ref<std::tuple_element_t<I, std::tuple<A...>>>());
        if (++finished == sizeof...(A)) {
            out.callback(std::apply([](auto&... o) { return std::tuple<A...>(std::move(*o)...); }, values));
        }
    }
};
}  // namespace detail

/// Heterogeneous gatherResults: Deferred<std::tuple<A, B, …>> of the members'
/// values, or defer::FirstError at the first Failure (DEF-42). Member values
/// pass on unchanged (copied).
template <class... A>
requires(sizeof...(A) > 0 && (!std::is_void_v<A> && ...)) Deferred<std::tuple<A...>> gatherResults(Deferred<A>... ds) {
    Deferred<std::tuple<A...>> out;
    out.detailCore()->cancelOverride = [members = std::vector<std::weak_ptr<detail::Core>>{ds.detailCore()...}](
                                           detail::Core&) { detail::cancelMembers(members); };
    auto state = std::make_shared<detail::GatherState<A...>>(out);
    auto attach = [&]<std::size_t... I>(std::index_sequence<I...>, auto&... d) {
        (
            [&] {
                detail::Core& member = *d.detailCore();
                member.checkOutput(typeid(std::tuple_element_t<I, std::tuple<A...>>));
                detail::Step s;
                s.kind = detail::StepKind::both;
                s.cb = [state](detail::Core&, detail::Slot& in) {
                    state->template record<I>(in);
                    return detail::StepOut{std::move(in), nullptr};
                };
                member.addStep(std::move(s));
            }(),
            ...);
    };
    attach(std::index_sequence_for<A...>{}, ds...);
    return out;
}

namespace detail {
template <class T, class R>
struct RaceState {
    explicit RaceState(Deferred<R> d) : out(std::move(d)) {}
    Deferred<R> out;
    std::vector<std::weak_ptr<Core>> members;
    std::vector<std::optional<Failure>> failures;
    std::optional<std::size_t> winner;
    std::size_t failed = 0;

    void record(Slot& in, std::size_t index) {
        if (in.isFailure()) {
            failures[index].emplace(std::move(in.failure()));
            if (++failed == members.size()) {
                std::vector<Failure> fs;
                for (auto& f : failures) fs.push_back(*f);
                out.errback(defer::FailureGroup(std::move(fs)));
            }
            return;
        }
        if (winner) return;  // a loser's late success is dropped
        winner = index;
        if constexpr (std::is_void_v<T>) {
            out.callback(index);
        } else {
            out.callback(R(index, in.take<T>()));
        }
        for (std::size_t j = 0; j < members.size(); ++j) {
            if (j == index) continue;
            if (auto m = members[j].lock()) {
                try {
                    m->cancel();
                } catch (...) {
                    log::failure("", "Exception while cancelling a race() loser:", Failure::current());
                }
            }
        }
    }
};
}  // namespace detail

/// Fires with (index, value) of the first member to succeed — just the index
/// for void members — and then cancels every other member once (DEF-44). Takes
/// every member's result, so late results and failures are never reported.
/// Errbacks with defer::FailureGroup when every member fails. Cancelling it
/// cancels every member. With no members it never fires.
template <class T>
auto race(std::vector<Deferred<T>> ds, SourceLocation loc = SourceLocation::current()) {
    using R = std::conditional_t<std::is_void_v<T>, std::size_t,
                                 std::pair<std::size_t, std::conditional_t<std::is_void_v<T>, int, T>>>;
    auto weakState = std::make_shared<std::weak_ptr<detail::RaceState<T, R>>>();
    Deferred<R> out(
        [weakState](Deferred<R>&) {
            auto st = weakState->lock();
            if (!st) return;
            for (std::size_t j = 0; j < st->members.size() && !st->winner; ++j) {
                if (auto m = st->members[j].lock()) m->cancel();
            }
        },
        loc);
    auto state = std::make_shared<detail::RaceState<T, R>>(out);
    *weakState = state;
    state->members = detail::weakMembers(ds);
    state->failures.resize(ds.size());
    for (std::size_t i = 0; i < ds.size(); ++i) {
        detail::Core& member = *ds[i].detailCore();
        member.checkOutput(typeid(T));
        detail::Step s;
        s.kind = detail::StepKind::both;
        s.cb = [state, i](detail::Core& m, detail::Slot&) {
            detail::Slot taken = m.take();  // DEF-32: the member is left empty
            state->record(taken, i);
            return detail::StepOut{};
        };
        member.setOutput(typeid(void));
        member.addStep(std::move(s));
    }
    return out;
}

}  // namespace weft
