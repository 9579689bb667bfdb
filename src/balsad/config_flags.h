// balsad's command line, ETCD_* environment variables and etcd's YAML config file, from one
// table of etcd's flags (config_flags.cc). Three kinds of etcd flag:
//   supported:   parsed into Config, shown by --help, read from ETCD_<NAME> and the YAML file;
//   inert:       accepted because balsad already behaves that way or the flag only tunes
//                something balsad does not have (e.g. --enable-pprof=false); listed in --help;
//   unsupported: accepted only at etcd's default value (so etcd's sample config file loads);
//                any other value is refused with an error naming the flag and saying why.
// Precedence (etcd's): a --config-file replaces every other flag and variable; otherwise a
// flag on the command line beats its ETCD_* variable, which beats the default.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "balsad/config.h"

namespace balsa::balsad {

// Registers every etcd flag on `app`, writing into `cfg`.
void add_etcd_flags(CLI::App& app, Config& cfg);

// After app.parse: applies ETCD_* variables to flags not given on the command line, then the
// config file if --config-file was given. Throws std::invalid_argument naming the flag, the
// variable or the file (and line) at fault. `warnings` gets what etcd would warn about.
void finish_config(CLI::App& app, Config& cfg, std::vector<std::string>* warnings);

// Reads etcd's YAML config file into `cfg` (defaults first). Throws std::invalid_argument.
void load_config_file(const std::string& path, Config& cfg);

}  // namespace balsa::balsad
