{
  "targets": [
    {
      "target_name": "siginfo",
      "sources": ["siginfo.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    }
  ]
}
