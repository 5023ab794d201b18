#include "driver/journal.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "skopos/json_writer.h"

namespace skopos::driver {

namespace {

Result<void> sync_directory(const std::string& file) {
  const std::string dir = std::filesystem::path(file).parent_path().string();
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return unexpected(Error::from_errno(errno, "open", dir));
  if (::fsync(fd.get()) != 0) return unexpected(Error::from_errno(errno, "fsync", dir));
  return {};
}

}  // namespace

std::string journal_line(const JournalEntry& entry) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("drain_id").value(entry.drain_id).key("phase").value(entry.phase);
  json.key("fencing_token").value(entry.fencing_token).key("boot_id").value(entry.boot_id);
  json.key("at").value(entry.at).key("facts").raw_value(entry.facts);
  json.end_object();
  return out;
}

Result<JournalEntry, std::string> parse_journal_line(std::string_view line) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(line.data(), line.size()).get(object) != simdjson::SUCCESS) {
    return unexpected(std::string("not a JSON object"));
  }
  JournalEntry entry;
  std::string_view text;
  if (object["drain_id"].get(text) != simdjson::SUCCESS) return unexpected(std::string("drain_id is missing"));
  entry.drain_id.assign(text);
  if (object["phase"].get(text) != simdjson::SUCCESS) return unexpected(std::string("phase is missing"));
  entry.phase.assign(text);
  if (object["boot_id"].get(text) != simdjson::SUCCESS) return unexpected(std::string("boot_id is missing"));
  entry.boot_id.assign(text);
  if (object["fencing_token"].get(entry.fencing_token) != simdjson::SUCCESS) {
    return unexpected(std::string("fencing_token is not an integer"));
  }
  if (object["at"].get(entry.at) != simdjson::SUCCESS) return unexpected(std::string("at is not an integer"));
  simdjson::dom::element facts;
  if (object["facts"].get(facts) != simdjson::SUCCESS || !facts.is_object()) {
    return unexpected(std::string("facts is not an object"));
  }
  entry.facts = simdjson::minify(facts);
  return entry;
}

void Journal::read_entries() {
  std::ifstream in(path_);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  std::size_t start = 0;
  std::size_t number = 0;
  while (start < text.size()) {
    const std::size_t newline = text.find('\n', start);
    ++number;
    const bool complete = newline != std::string::npos;
    const std::string_view line(text.data() + start, (complete ? newline : text.size()) - start);
    start = complete ? newline + 1 : text.size();
    auto entry = parse_journal_line(line);
    if (!entry) {
      // Only the last line can be torn by a crash; damage anywhere else is reported too,
      // and nothing after it is trusted.
      damage_ = path_ + " line " + std::to_string(number) + ": " + entry.error() +
                (complete ? "" : " (an unfinished last line)");
      break;
    }
    entries_.push_back(std::move(*entry));
  }
  if (!entries_.empty()) last_ = entries_.back();
}

Result<Journal> Journal::inspect(const std::string& path) {
  Journal journal;
  journal.path_ = path;
  if (::access(path.c_str(), F_OK) != 0) {
    if (errno == ENOENT) return journal;
    return unexpected(Error::from_errno(errno, "access", path));
  }
  journal.read_entries();
  return journal;
}

Result<Journal> Journal::open(const std::string& path) {
  Journal journal;
  journal.path_ = path;
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return unexpected(Error::invalid("create directory", dir.string(), ec.message()));
  const bool existed = std::filesystem::exists(path);
  journal.fd_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!journal.fd_) return unexpected(Error::from_errno(errno, "open", path));
  if (!existed) {
    if (::fsync(journal.fd_.get()) != 0) return unexpected(Error::from_errno(errno, "fsync", path));
    if (auto synced = sync_directory(path); !synced) return unexpected(std::move(synced).error());
  }
  journal.read_entries();
  if (!journal.damage_.empty()) {
    // Cut the file back to what was durable, so the next record starts on a clean line.
    std::string good;
    for (const JournalEntry& entry : journal.entries_) good += journal_line(entry) + "\n";
    if (::ftruncate(journal.fd_.get(), 0) != 0 ||
        ::write(journal.fd_.get(), good.data(), good.size()) != static_cast<ssize_t>(good.size()) ||
        ::fdatasync(journal.fd_.get()) != 0) {
      return unexpected(Error::from_errno(errno, "repair", path));
    }
  }
  return journal;
}

Result<void> Journal::record(JournalEntry entry) {
  if (!entries_.empty() && entries_.front().drain_id != entry.drain_id) {
    return unexpected(Error::invalid("journal", path_,
                                     "drain '" + entries_.front().drain_id + "' is still in progress; finish it first"));
  }
  {
    simdjson::dom::parser parser;
    simdjson::dom::element facts;
    if (parser.parse(entry.facts).get(facts) != simdjson::SUCCESS || !facts.is_object()) {
      return unexpected(Error::invalid("journal", path_, "the facts of phase '" + entry.phase + "' are not a JSON object"));
    }
  }
  const std::string line = journal_line(entry) + "\n";
  std::size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd_.get(), line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return unexpected(Error::from_errno(errno, "write", path_));
    written += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd_.get()) != 0) return unexpected(Error::from_errno(errno, "fdatasync", path_));
  entries_.push_back(entry);
  last_ = std::move(entry);
  return {};
}

Result<void> Journal::finish() {
  const std::string done = path_ + ".done";
  if (::rename(path_.c_str(), done.c_str()) != 0) return unexpected(Error::from_errno(errno, "rename", path_));
  if (auto synced = sync_directory(path_); !synced) return unexpected(std::move(synced).error());
  fd_ = UniqueFd(::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd_) return unexpected(Error::from_errno(errno, "open", path_));
  if (auto synced = sync_directory(path_); !synced) return unexpected(std::move(synced).error());
  entries_.clear();
  last_.reset();
  damage_.clear();
  return {};
}

}  // namespace skopos::driver
