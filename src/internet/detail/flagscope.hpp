// Private: a re-entrancy flag set for the length of a scope.
#pragma once

namespace weft::detail {

/// Sets `flag` now and clears it when the scope ends, by return or by throw.
/// The flag must outlive the scope (a member of an object the caller holds).
class FlagScope {
public:
    explicit FlagScope(bool& flag) noexcept : flag_(flag) { flag_ = true; }
    ~FlagScope() { flag_ = false; }
    FlagScope(const FlagScope&) = delete;
    FlagScope& operator=(const FlagScope&) = delete;

private:
    bool& flag_;
};

}  // namespace weft::detail
