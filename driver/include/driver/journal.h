// Journal: the drain's durable record on local disk, written before every side effect so
// that a driver killed at any point knows, on restart, what it may have done: the phase
// it was entering, the lock's fencing token, the boot it ran in, and the facts it needs
// to undo (fenced ports, the Mesos machine, the maintenance window).
//
// One JSON object per line, appended and fdatasync'ed before record() returns; the file
// and its directory are fsync'ed when created. A crash mid-write leaves at most a torn
// last line, which open() reports and ignores: the entry before it is the last one that
// was durable, and the side effect it announced may or may not have happened, so the
// driver re-reads the real state before deciding. finish() rotates the journal away once
// a drain completed or was rolled back.
//
// Not thread-safe: one driver per host (the host lock) and one Journal per driver.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "skopos/result.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {

struct JournalEntry {
  std::string drain_id;         // one drain, from start to finish
  std::string phase;            // the phase being entered ("fence", "stop-containers", ...)
  std::int64_t fencing_token = 0;  // the cluster lock's, 0 without one
  std::string boot_id;
  std::int64_t at = 0;          // unix seconds
  // What undoing needs: one JSON object, as the drain wrote it (DrainFacts::to_json),
  // kept as text so the journal need not know the drain's facts.
  std::string facts = "{}";
};

class Journal {
 public:
  // Opens (creating it and its directory) the journal at `path` and reads what it holds,
  // cutting a torn last line away. Only the driver holding the host's drain lock may.
  static Result<Journal> open(const std::string& path);
  // Reads the journal without creating, repairing or being able to write it: for
  // looking at a drain another process may be writing (status, the agent's idle loop).
  // A missing file is an empty journal; damage() says what could not be read.
  static Result<Journal> inspect(const std::string& path);

  // Appends `entry` durably (fdatasync) before returning. Refuses (writing nothing) an
  // entry whose facts are not a JSON object: the journal never holds a line it could
  // not read back.
  Result<void> record(JournalEntry entry);
  // The last durable entry, if any.
  const std::optional<JournalEntry>& last() const { return last_; }
  // Every durable entry of the current drain, oldest first.
  const std::vector<JournalEntry>& entries() const { return entries_; }
  // What open() had to ignore (a torn last line), for the log; "" if nothing.
  const std::string& damage() const { return damage_; }
  // Moves the journal to `path`.done (replacing an older one), fsync'ed: no drain in
  // progress any more.
  Result<void> finish();

  const std::string& path() const { return path_; }

 private:
  Journal() = default;
  // Parses the file at path_ into entries_, last_ and damage_.
  void read_entries();
  std::string path_;
  UniqueFd fd_;
  std::vector<JournalEntry> entries_;
  std::optional<JournalEntry> last_;
  std::string damage_;
};

// One entry as a JSON line and back; errors name what is wrong.
std::string journal_line(const JournalEntry& entry);
Result<JournalEntry, std::string> parse_journal_line(std::string_view line);

}  // namespace skopos::driver
