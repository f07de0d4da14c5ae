/* Content types by extension: the web's formats as browsers expect them labelled (the WHATWG
 * MIME sniffing standard's and IANA's registrations, nginx's mime.types where they agree). */
#include <string.h>
#include <strings.h>

#include "httpd.h"

const char *httpd_mime(const char *path)
{
  static const struct {
    const char *ext, *type;
  } types[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"jsonld", "application/ld+json"},
      {"webmanifest", "application/manifest+json"},
      {"txt", "text/plain; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"},
      {"csv", "text/csv; charset=utf-8"},
      {"vtt", "text/vtt; charset=utf-8"},
      {"ics", "text/calendar; charset=utf-8"},
      {"xml", "application/xml"},
      {"rss", "application/rss+xml"},
      {"atom", "application/atom+xml"},
      {"xhtml", "application/xhtml+xml"},
      {"svg", "image/svg+xml"},
      {"svgz", "image/svg+xml"},
      {"png", "image/png"},
      {"apng", "image/apng"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"jxl", "image/jxl"},
      {"heic", "image/heic"},
      {"bmp", "image/bmp"},
      {"tif", "image/tiff"},
      {"tiff", "image/tiff"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tar", "application/x-tar"},
      {"zst", "application/zstd"},
      {"xz", "application/x-xz"},
      {"7z", "application/x-7z-compressed"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"mp4", "video/mp4"},
      {"m4v", "video/mp4"},
      {"webm", "video/webm"},
      {"ogv", "video/ogg"},
      {"mov", "video/quicktime"},
      {"mkv", "video/x-matroska"},
      {"m3u8", "application/vnd.apple.mpegurl"},
      {"mpd", "application/dash+xml"},
      {"ts", "video/mp2t"},
      {"mp3", "audio/mpeg"},
      {"m4a", "audio/mp4"},
      {"aac", "audio/aac"},
      {"ogg", "audio/ogg"},
      {"oga", "audio/ogg"},
      {"opus", "audio/ogg"},
      {"flac", "audio/flac"},
      {"wav", "audio/wav"},
      {"weba", "audio/webm"},
  };
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
      if (!strcasecmp(dot + 1, types[i].ext))
        return types[i].type;
  return "application/octet-stream";
}
