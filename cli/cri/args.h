// cloak-cri's command-line parsing, the way crictl (v1.26: urfave/cli v2
// over Go's flag package, short-option handling on) reads a command line, so
// that an invocation means the same to both (docs/cri.md, "cloak-cri and
// crictl"):
//   - flags come first: parsing stops at the first argument that is not a
//     flag, and everything from there on is an argument, verbatim: in
//     `exec CTR -- ls` the "--" is the command's first word, as in crictl;
//   - a "--" met while flags are still being read ends them and is dropped
//     (`exec -s -- CTR ls` runs ls);
//   - -name and --name are the same flag; a value is `--name value` or
//     `--name=value`; a bool flag takes `--name=false`;
//   - an unknown single-dash word of several letters is read as that many
//     one-letter flags (`-it`, `-aq`);
//   - -h / --help asks for help.
#ifndef CLOAK_CLI_CRI_ARGS_H_
#define CLOAK_CLI_CRI_ARGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::cri {

struct FlagSpec {
  std::string name;        // long name, e.g. "interactive"
  char short_name = 0;     // e.g. 'i'; 0 for none
  bool takes_value = false;
  std::string value_name;  // for help: "value", "ID", ...
  std::string usage;
};

struct ParsedFlags {
  std::map<std::string, std::string> values;  // long name -> value ("true" for a set bool)
  std::vector<std::string> args;              // what followed the flags, verbatim
  bool help = false;

  bool Has(const std::string& name) const { return values.count(name) != 0; }
  bool Bool(const std::string& name) const;
  std::string Get(const std::string& name, const std::string& fallback = "") const;
};

// Reads `argv` (the words after the program or subcommand name) against
// `specs`. Errors are crictl's words: "flag provided but not defined: -x",
// "flag needs an argument: -p", "invalid boolean value ... for -i".
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs,
                                       const std::vector<std::string>& argv);

// crictl's -t/--timeout: a Go duration ("2s", "1m30s", "240s"); cloak-cri
// also takes a bare number of seconds ("240"), which crictl refuses.
absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text);

// The OPTIONS block of a help text, one flag a line, as crictl prints them.
std::string FlagsHelp(const std::vector<FlagSpec>& specs);

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_ARGS_H_
