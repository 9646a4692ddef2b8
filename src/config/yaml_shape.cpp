// SPDX-License-Identifier: Apache-2.0
#include "config/yaml_shape.h"

#include <sstream>
#include <unordered_map>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace portico::config::detail {
namespace {

// Counts what a document would build. Throws Stop at the first bound crossed, so that parsing
// ends there (yaml-cpp keeps calling a handler for as long as its input lasts).
class ShapeCounter final : public YAML::EventHandler {
public:
    struct Stop {
        YamlShapeError error;
    };

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string&) override {
        leaf(mark, anchor);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        auto it = sizes_.find(anchor);
        if (it == sizes_.end()) {
            // yaml-cpp numbers an anchor when it starts: an alias to one whose node has not
            // ended is inside it, and would make the tree a cycle.
            throw Stop{{mark, "an alias inside the node its anchor names (a cycle)"}};
        }
        add(mark, it->second);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        open(mark, anchor);
    }
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
        open(mark, anchor);
    }
    void OnMapEnd() override { close(); }

    // Where the document's first node is.
    const YAML::Mark& firstMark() const { return first_mark_; }

private:
    struct Open {
        YAML::anchor_t anchor;
        std::size_t nodes_before;  // nodes_ when it started
    };

    void add(const YAML::Mark& mark, std::size_t n) {
        if (nodes_ == 0) first_mark_ = mark;
        nodes_ += n;
        if (nodes_ > kMaxYamlNodes)
            throw Stop{{mark, "more than " + std::to_string(kMaxYamlNodes) +
                                  " YAML nodes (aliases count as what they repeat): not a configuration"}};
    }
    void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
        add(mark, 1);
        if (anchor != YAML::NullAnchor) sizes_[anchor] = 1;
    }
    void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
        add(mark, 1);
        if (stack_.size() >= kMaxYamlDepth)
            throw Stop{{mark, "maps and sequences nested deeper than " + std::to_string(kMaxYamlDepth) + " levels"}};
        stack_.push_back({anchor, nodes_ - 1});
    }
    void close() {
        if (stack_.empty()) return;
        const Open done = stack_.back();
        stack_.pop_back();
        if (done.anchor != YAML::NullAnchor) sizes_[done.anchor] = nodes_ - done.nodes_before;
    }

    std::size_t nodes_ = 0;
    std::vector<Open> stack_;
    std::unordered_map<YAML::anchor_t, std::size_t> sizes_;  // nodes under each finished anchor
    YAML::Mark first_mark_ = YAML::Mark::null_mark();
};

}  // namespace

std::optional<YamlShapeError> checkYamlShape(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    try {
        ShapeCounter document;
        if (!parser.HandleNextDocument(document)) return std::nullopt;
        // One more call tells whether a second document follows (it is an error); never more,
        // since yaml-cpp may produce documents without end.
        ShapeCounter next;
        if (parser.HandleNextDocument(next))
            return YamlShapeError{next.firstMark(), "expected one YAML document, found another here"};
    } catch (const ShapeCounter::Stop& stop) {
        return stop.error;
    }
    return std::nullopt;
}

}  // namespace portico::config::detail
