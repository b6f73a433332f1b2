// An error answered to an HTTP client as OpenAI does: a status and {"error": {"message", "type", "param", "code"}}.
// It is an afd::Error (src/util/error.h), so code that only knows afd::Error still reports its sentence.
#pragma once

#include <string>

#include "util/error.h"

namespace afd::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : Error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type, param, code;  // empty param/code are sent as null
};

// The JSON body of an error response.
std::string error_body(const std::string& message, const std::string& type, const std::string& param,
                       const std::string& code);
inline std::string error_body(const ApiError& e) { return error_body(e.what(), e.type, e.param, e.code); }

}  // namespace afd::server
