// ZooKeeper health by its four-letter words (ruok, srvr, mntr), per server and for the
// ensemble. `ruok` alone is not health: a server that lost its quorum still answers
// "imok"; what counts is a leader that serves and a majority of the ensemble serving
// with it. Servers that have the words disabled (4lw.commands.whitelist) are reported
// as such, with the setting that enables them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "skopos/result.h"

namespace skopos::driver {

struct ZkServerHealth {
  std::string endpoint;       // host:port as given
  bool reachable = false;     // answered at all
  bool imok = false;          // ruok -> imok
  bool serving = false;       // srvr answered with a mode (not "not currently serving")
  std::string mode;           // leader, follower, observer, standalone, or ""
  std::string version;
  std::int64_t synced_followers = -1;  // the leader's mntr zk_synced_followers
  std::string error;          // why it is not healthy, for people
};

struct ZkEnsembleHealth {
  std::vector<ZkServerHealth> servers;
  bool healthy = false;  // standalone serving, or a serving leader with a serving majority
  std::string leader;    // endpoint of the leader, if one serves
  std::string summary;   // one line for people: "leader 127.0.0.1:2181, 3 of 3 serving"
};

// One word to one server ("host:port"); its whole answer, or an error naming the server.
Result<std::string> zookeeper_four_letter_word(const std::string& endpoint, const std::string& word,
                                               std::chrono::milliseconds timeout);

ZkServerHealth check_zookeeper_server(const std::string& endpoint, std::chrono::milliseconds timeout);

// The parsers of the answers, exposed for the fuzz target. read_srvr: fills mode,
// version and serving from a srvr answer; false with `error` set (naming
// health.endpoint) when the word is disabled, the server does not serve, or there is no
// mode. read_synced_followers: the leader's mntr zk_synced_followers, -1 when absent,
// disabled or not a count.
bool read_srvr(const std::string& answer, ZkServerHealth& health);
std::int64_t read_synced_followers(const std::string& answer);
// Every server of the ensemble (as configured: the majority is of these).
ZkEnsembleHealth check_zookeeper(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout);

}  // namespace skopos::driver
