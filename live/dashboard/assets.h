// The dashboard's static files (live/dashboard/static/**), embedded into the binary at build time
// (live/dashboard/embed_assets.cmake), so a node needs no extra files and no network.
#pragma once

#include <span>
#include <string_view>

namespace orrery::live::dashboard {

struct Asset {
  std::string_view path;          // relative to static/, e.g. "index.html", "js/app.js"
  std::string_view content_type;  // from the extension ("text/html; charset=utf-8", ...)
  std::string_view body;
};

// The asset at `path` (no leading '/'), or nullptr.
const Asset* FindAsset(std::string_view path);
// Every asset, by path.
std::span<const Asset> AllAssets();

}  // namespace orrery::live::dashboard
